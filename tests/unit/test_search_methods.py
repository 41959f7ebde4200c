"""Every registered search method behind the one interface: run stage by stage through the CLI, it
writes one arch-<target>.yaml per target of its recipe, arch.yaml (the selected target) and a
search.json whose common keys hold what the shapes are (MACs counted independently here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nas_impl.cli import main
from nas_impl.errors import NasReproError
from nas_impl.methods import get_method, method_info, method_keys, method_names
from nas_impl.methods.interface import FINAL_SUMMARY, MethodInfo, SearchedShape, SearchResult, Stage
from nas_impl.metrics import count_macs
from nas_impl.models import build_model, load_spec

BASE = {"family": "resnet-cifar", "depth": 8, "shortcut": "B"}
# A method that searches another family than the CIFAR ResNets names its own small base network.
BASE_OF = {"autoshrink": {"family": "shrink-cnn", "stem": "cifar", "stem_channels": 8, "nodes": 3,
                          "edges": [[0, 1], [1, 2]], "ops": ["conv1x1", "sep3x3"], "cells": [1, 1], "filters": [4, 8],
                          "pool": [1, 2], "head_channels": None},
           "memnas": {"family": "memnas-cells", "width": 4},
           "proxylessnas": {"family": "mbconv-chain", "stem": "cifar", "first_conv": 8,
                            "blocks": ["e1_k3_c8_s1", "e6_k3_c8_s1", "e6_k3_c16_s2"], "feature_mix": 32}}
TRAINING = {"epochs": 1, "batch_size": 32, "lr": 0.05, "train_subset": 160, "augment": {"crop_padding": 2, "flip": True}}
# A tiny recipe per registered method: a method added to the registry without one fails here.
TINY = {
    "autoshrink": {"nodes": 4, "k": 2, "keep_fraction": 0.5, "per_class_train": 8, "per_class_valid": 4},
    "tas": {"target_ratio": 0.6},
    "autoslim": {"targets": ["0.5x", "0.3x"], "divisions": 4, "width_min": 0.25, "slim_images": 32,
                 "slim_batch_size": 16, "calibration_batches": 1},
    "memnas": {"round0": 2, "rounds": 1, "k": 2, "controller_from": 1, "controller_epochs": 5, "valid_size": 32},
    "proxylessnas": {"supernet_warmup_epochs": 0, "arch_skip_epochs": 0, "valid_size": 32, "kernels": [3, 5],
                     "expands": [3], "latency_repeats": 2, "latency_warmup": 0},
}
# Training keys a method's search needs otherwise (AutoShrink's proxy trains with Adam, unaugmented).
TRAINING_OF = {"autoshrink": {"optimizer": "adam", "lr": 4e-3, "schedule": "constant", "augment": {},
                              "train_subset": None}}
COMMON_KEYS = {"method", "base_macs", "selected", "targets", "wall_time_s", "details", "recipe", "record", "run"}


def test_every_registered_method_has_a_tiny_recipe_here():
    assert sorted(TINY) == method_names()


@pytest.mark.parametrize("name", method_names())
def test_the_description_is_torch_free_and_consistent(name):
    info = method_info(name)
    assert info.name == name and get_method(name).info is info
    assert info.stages[-1].summary == FINAL_SUMMARY
    assert method_keys(name) >= set(TINY[name])
    recipe = info.recipe_from_dict({**TRAINING, **TRAINING_OF.get(name, {}), **TINY[name]}, "tiny")
    assert len(info.targets(recipe)) >= 1


NOT_APPLIED = [("grad_clip", 5.0), ("distill", {"teacher": "teacher.pt"})]


@pytest.mark.parametrize("name", method_names())
def test_the_keys_a_search_refuses_are_the_ones_it_lists_without_torch(name):
    from nas_impl.methods import not_applied_keys

    values = {"grad_clip": 5.0, "distill": {"teacher": "t.pt"}, "label_smoothing": 0.1}
    refused = set()
    for key, value in values.items():
        try:
            method_info(name).recipe_from_dict({**TRAINING, **TRAINING_OF.get(name, {}), **TINY[name], key: value}, "tiny")
        except NasReproError:
            refused.add(key)
    assert refused == not_applied_keys(name)


def _refused_pairs() -> list:
    from nas_impl.methods import not_applied_keys

    return [pytest.param(name, key, value, id=f"{key}-{name}") for name in method_names()
            for key, value in NOT_APPLIED if key in not_applied_keys(name)]


@pytest.mark.parametrize("name,key,value", _refused_pairs())
def test_a_training_key_no_search_applies_is_refused_by_name(name, key, value):
    info = method_info(name)
    with pytest.raises(NasReproError, match=f"'{key}'.*does not apply it; remove the key"):
        info.recipe_from_dict({**TRAINING, **TRAINING_OF.get(name, {}), **TINY[name], key: value}, "tiny")


def test_tas_refuses_label_smoothing_its_search_step_does_not_use():
    with pytest.raises(NasReproError, match="'label_smoothing'.*does not apply it"):
        method_info("tas").recipe_from_dict({**TRAINING, **TINY["tas"], "label_smoothing": 0.1}, "tiny")
    for name in ("autoslim", "proxylessnas"):  # their weight steps apply it (AutoShrink's proxy does not)
        method_info(name).recipe_from_dict({**TRAINING, **TRAINING_OF.get(name, {}), **TINY[name], "label_smoothing": 0.1}, "tiny")


@pytest.mark.parametrize("name", method_names())
def test_every_method_writes_one_shape_per_target(name, tmp_path, capsys):
    recipe_file, arch = tmp_path / "recipe.yaml", tmp_path / "base.yaml"
    raw = {**TRAINING, **TRAINING_OF.get(name, {}), **TINY[name]}
    recipe_file.write_text(yaml.safe_dump(raw))
    base = BASE_OF.get(name, BASE)
    arch.write_text(yaml.safe_dump(base))
    out = tmp_path / "search"
    info = method_info(name)
    for stage in info.stages:  # as the workflow runs them: one job per stage
        code = main(["search", "--method", name, "--stage", stage.name, "--arch", str(arch), "--recipe",
                     str(recipe_file), "--dataset", "fashion-mnist", "--out", str(out), "--device", "cpu"])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert (out / stage.summary).exists()
    summary = json.loads((out / FINAL_SUMMARY).read_text())
    assert COMMON_KEYS <= set(summary) and summary["method"] == name
    targets = info.targets(info.recipe_from_dict(raw, "tiny"))
    assert set(summary["targets"]) == set(targets)
    base_macs = count_macs(build_model({**base, "in_channels": 1, "num_classes": 10}), (1, 28, 28))
    assert summary["base_macs"] == base_macs
    for target, found in summary["targets"].items():
        spec = load_spec(out / f"arch-{target}.yaml")
        assert spec == found["arch"] and found["file"] == f"arch-{target}.yaml"
        macs = count_macs(build_model(spec), (1, 28, 28))
        assert found["macs"] == macs and found["ratio_of_base"] == pytest.approx(macs / base_macs)
    assert load_spec(out / "arch.yaml") == summary["targets"][summary["selected"]]["arch"]


def test_a_method_description_must_end_with_the_stage_that_writes_search_json():
    with pytest.raises(ValueError, match="last stage must write search.json"):
        MethodInfo("m", dict, dict, tuple, stages=(Stage("train", "train.json"),))
    with pytest.raises(ValueError, match="must write warmup.json"):
        MethodInfo("m", dict, dict, tuple, stages=(Stage("warmup", "w.json"), Stage("search", "search.json")))


def test_an_unknown_stage_is_one_error_naming_the_stages():
    with pytest.raises(NasReproError, match="method 'autoslim' has stages supernet, slim"):
        method_info("autoslim").stage("search")


def test_the_selected_target_must_be_a_found_one():
    shape = SearchedShape({"family": "resnet-cifar", "depth": 8}, 1.0, 0.5)
    with pytest.raises(ValueError, match="selected target '0.3x'"):
        SearchResult("m", 2.0, {"0.5x": shape}, "0.3x", 0.0)


def test_search_result_writes_shapes_before_the_summary(tmp_path):
    shapes = {t: SearchedShape({"family": "resnet-cifar", "depth": d}, 1.0, 0.5) for t, d in (("0.5x", 8), ("0.3x", 14))}
    SearchResult("m", 2.0, shapes, "0.3x", 1.5, {"steps": 3}).write(tmp_path)
    assert load_spec(tmp_path / "arch.yaml")["depth"] == 14 == load_spec(tmp_path / "arch-0.3x.yaml")["depth"]
    times = {p.name: p.stat().st_mtime_ns for p in Path(tmp_path).iterdir()}
    assert times[FINAL_SUMMARY] >= max(times.values())
