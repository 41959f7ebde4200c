"""A whole TAS search: the recipe, the epoch loop, its files, resume, and the `nasrepro search` verb."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from nas_impl.cli import main
from nas_impl.data import TensorLoader
from nas_impl.errors import NasReproError, SpecError
from nas_impl.methods.tas.flops import argmax_macs, estimated_macs
from nas_impl.methods.tas.search import eval_top1
from nas_impl.methods.tas.loop import TASSearch, super_net
from nas_impl.methods.tas.recipe import search_recipe_from_dict
from nas_impl.methods import get_method
from nas_impl.methods.interface import StageResult
from nas_impl.metrics import count_macs
from nas_impl.models import build_model, load_spec, normalize_spec
from nas_impl.run_data import RunData

INPUT = (3, 12, 12)
RECIPE = {"epochs": 2, "batch_size": 16, "lr": 0.05, "nesterov": True, "schedule": "cosine",
          "augment": {"crop_padding": 2, "flip": True}, "target_ratio": 0.5}


def _data(seed: int = 0, n: int = 64) -> RunData:
    gen = torch.Generator().manual_seed(123)
    x = torch.randint(0, 256, (n, *INPUT), dtype=torch.uint8, generator=gen)
    y = torch.arange(n) % 4
    half = n // 2
    common = dict(mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True, drop_last=True, channels_last=False)
    return RunData({"weights": TensorLoader(x[:half], y[:half], 16, seed=seed, **common),
                    "architecture": TensorLoader(x[half:], y[half:], 16, seed=seed + 1, **common)},
                   4, INPUT, {"dataset": "synthetic"})


def _search(tmp_path, name="s", seed=0, **recipe_changes) -> TASSearch:
    recipe = search_recipe_from_dict({**RECIPE, **recipe_changes})
    torch.manual_seed(seed)
    net = super_net({"family": "resnet-cifar", "depth": 20, "block": "basic"}, recipe, 4, INPUT)
    return TASSearch(net, recipe, _data(seed), out_dir=tmp_path / name, seed=seed)


# ---------------------------------------------------------------- recipe

def test_search_recipe_splits_weight_and_architecture_keys():
    recipe = search_recipe_from_dict({**RECIPE, "arch_lr": {"value": 0.002, "source": "test"},
                                      "tau_schedule": "linear", "tau_max": 10})
    assert recipe.weights.epochs == 2 and recipe.weights.lr == 0.05
    assert recipe.tas.target_ratio == 0.5 and recipe.tas.arch_lr == 0.002 and recipe.tas.tau_max == 10
    assert recipe.tas.arch_betas == (0.5, 0.999) and recipe.tas.flop_weight == 2.0
    assert recipe.weights.sources == {"arch_lr": "test"}
    round_trip = search_recipe_from_dict(recipe.to_dict())
    assert round_trip == recipe


@pytest.mark.parametrize("change, message", [
    ({"target_ratio": None}, "'target_ratio' is required"),
    ({"target_ratio": 1.5}, "target_ratio"),
    ({"tau_schedule": "exp"}, "tau_schedule"),
    ({"tau_min": 6.0}, "tau_min"),
    ({"arch_learning_rate": 0.1}, "unknown search recipe key(s) ['arch_learning_rate']"),
    ({"epochs": 0}, "epochs"),
])
def test_bad_search_recipes_name_the_key(change, message):
    raw = {**RECIPE, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(SpecError, match="origin-x") as err:
        search_recipe_from_dict(raw, origin="origin-x")
    assert message in str(err.value)


# ---------------------------------------------------------------- the loop

def test_search_writes_log_shape_and_summary(tmp_path):
    search = _search(tmp_path)
    result = search.fit()
    summary = result.details
    out = tmp_path / "s"
    rows = list(csv.DictReader((out / "search_log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[0]["tau"]) == pytest.approx(5.0) and float(rows[1]["tau"]) == pytest.approx(2.55)
    spec = load_spec(out / "arch.yaml")
    assert spec == load_spec(out / "arch_last.yaml") and summary["pick"] == "last"
    # One target, named after the recipe's ratio; its shape is arch-<target>.yaml and arch.yaml.
    assert list(result.targets) == ["0.5x"] and result.selected == "0.5x"
    assert load_spec(out / "arch-0.5x.yaml") == spec
    # The summary's MACs are the derived shape's, counted independently here.
    macs = count_macs(build_model(spec), INPUT)
    assert result.targets["0.5x"].macs == macs == int(float(rows[-1]["argmax_macs"]))
    assert result.base_macs == count_macs(build_model("resnet20-cifar", num_classes=4), INPUT)
    assert summary["macs_reduction"] == pytest.approx(100 * (1 - macs / result.base_macs))
    assert summary["target_macs"] == pytest.approx(0.5 * result.base_macs)
    written = json.loads((out / "search.json").read_text())
    assert written["targets"]["0.5x"]["arch"] == spec and written["record"]["dataset"] == "synthetic"
    band = float(rows[-1]["band_ratio"])
    assert written["details"]["in_band"] == search.in_band(band) == (0.45 <= band <= 0.5)
    # The band value is the configs' estimated_FLOP rule on the shape; every reported MAC count is the built one.
    assert int(float(rows[-1]["band_macs"])) == estimated_macs(spec, INPUT[1:])
    assert written["targets"]["0.5x"]["details"]["target_band"] == pytest.approx([0.45, 0.5])
    assert (out / "arch_best.yaml").exists() == (written["details"]["best"] is not None)


@pytest.mark.parametrize("select", ["last", "best", "best-in-band"])
def test_the_recipe_selects_the_retrained_shape(tmp_path, select):
    """A band no shape reaches: 'best' and 'best-in-band' both pick the epoch of the best eval pass."""
    search = _search(tmp_path, epochs=3, target_ratio=0.01, tolerance=0.0, select=select)
    summary = search.fit().details
    out = tmp_path / "s"
    rows = list(csv.DictReader((out / "search_log.csv").open()))
    assert not any(row["in_band"] == "True" for row in rows)
    if select == "last":
        assert summary["best"] is None and not (out / "arch_best.yaml").exists()
        assert all(row["eval_top1"] == "" for row in rows)  # no eval pass without a 'best' selection
        expected = 3
    else:
        accuracies = [float(row["eval_top1"]) for row in rows]
        expected = accuracies.index(max(accuracies)) + 1
        assert summary["best"]["epoch"] == expected
        assert load_spec(out / "arch_best.yaml") == load_spec(out / "arch.yaml")
    assert summary["last"]["epoch"] == 3 and summary["pick"] == select
    assert json.loads((out / "search.json").read_text())["targets"]["0.01x"]["details"]["epoch"] == expected
    assert load_spec(out / "arch.yaml") == normalize_spec(search.history[expected - 1]["spec"])


@pytest.mark.parametrize("select, expected", [("best", 2), ("best-in-band", 3)])
def test_best_and_best_in_band_picks(tmp_path, select, expected):
    """Epochs 1-4 with eval accuracies 50, 70, 60, 60 and band ratios 0.5, 0.7, 0.52, 0.5 (target
    0.55, tolerance 0.05): 'best' takes the official script's pick, epoch 2, whatever its ratio;
    'best-in-band' the best of the epochs within |ratio - 0.55| <= 0.05, the first on ties (3)."""
    search = _search(tmp_path, target_ratio=0.55, tolerance=0.05, select=select)
    search.loop.history[:] = [{"epoch": e, "eval_top1": a, "band_ratio": r}
                              for e, a, r in [(1, 50.0, 0.5), (2, 70.0, 0.7), (3, 60.0, 0.52), (4, 60.0, 0.5)]]
    assert search.best()["epoch"] == expected


def test_eval_pass_runs_in_eval_mode_over_the_whole_half(tmp_path):
    search = _search(tmp_path, select="best")
    net, loader = search.net, search.data.loaders["architecture"]
    with torch.no_grad():
        for m in net.modules():  # running statistics far from any batch's: eval mode must show
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
    torch.manual_seed(5)
    got = eval_top1(net, loader, 1.0)
    assert net.training  # restored
    net.eval()
    torch.manual_seed(5)
    correct = seen = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((net(x, 1.0).argmax(1) == y).sum())
            seen += len(y)
    net.train()
    assert seen == 32 and got == pytest.approx(100.0 * correct / seen)


def test_in_band_follows_the_code_or_the_paper_tolerance(tmp_path):
    code = _search(tmp_path, "code")
    paper = _search(tmp_path, "paper", paper_tolerance=True)
    assert code.band() == pytest.approx((0.45, 0.5)) and paper.band() == pytest.approx((0.45, 0.55))
    assert code.in_band(0.5) and code.in_band(0.45) and not code.in_band(0.501) and not code.in_band(0.449)
    assert paper.in_band(0.55) and not paper.in_band(0.551)


def test_search_is_seeded_and_resumes_bit_exactly(tmp_path):
    whole = _search(tmp_path, "whole")
    whole.fit()
    again = _search(tmp_path, "again")
    again.fit()
    interrupted = _search(tmp_path, "interrupted")
    stopped = interrupted.fit(stop_after=1)
    assert isinstance(stopped, StageResult) and stopped.stopped_after_epoch == 1
    assert not (tmp_path / "interrupted" / "arch.yaml").exists()
    resumed = _search(tmp_path, "interrupted")
    resumed.fit(resume=True)
    for other in (again, resumed):
        for (name, a), b in zip(whole.net.state_dict().items(), other.net.state_dict().values()):
            assert torch.equal(a, b), name
    assert load_spec(tmp_path / "whole" / "arch.yaml") == load_spec(tmp_path / "interrupted" / "arch.yaml")


def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path):
    _search(tmp_path, "s").fit(stop_after=1)
    with pytest.raises(NasReproError, match="recipe differ"):
        _search(tmp_path, "s", target_ratio=0.7).fit(resume=True)


def test_the_flop_loss_moves_the_searched_shape_toward_a_small_target(tmp_path):
    """With a far-too-small target and a strong FLOP weight the argmax MACs must fall."""
    search = _search(tmp_path, epochs=3, target_ratio=0.2, flop_weight=50.0, arch_lr=0.05)
    before = argmax_macs(search.net)
    result = search.fit()
    assert result.targets[result.selected].macs < before


def test_tas_is_registered_behind_the_method_interface():
    method = get_method("tas")
    assert method.info.name == "tas" and method.info.recipe_from_dict(RECIPE, "x") == search_recipe_from_dict(RECIPE)
    with pytest.raises(NasReproError, match="unknown search method 'darts'; known: autoshrink, autoslim, memnas, proxylessnas, tas"):
        get_method("darts")


def test_only_cifar_resnets_are_searched():
    recipe = search_recipe_from_dict(RECIPE)
    with pytest.raises(NasReproError, match="resnet-cifar"):
        super_net({"family": "mobilenet-v2"}, recipe, 10, (3, 32, 32))


# ---------------------------------------------------------------- the verb

def test_search_verb_on_a_real_dataset(tmp_path, capsys):
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "epochs": 1, "batch_size": 32, "train_subset": 128}))
    out = tmp_path / "run"
    code = main(["search", "--method", "tas", "--arch", "resnet20-cifar", "--recipe", str(recipe),
                 "--dataset", "fashion-mnist", "--out", str(out), "--device", "cpu"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    spec = load_spec(out / "arch.yaml")
    assert spec["in_channels"] == 1 and spec["num_classes"] == 10
    assert printed["targets"][printed["selected"]]["macs"] == count_macs(build_model(spec), (1, 28, 28))
    record = json.loads((out / "search.json").read_text())["record"]
    assert record["search_split"]["sizes"] == {"weights": 64, "architecture": 64}


def test_search_verb_errors(tmp_path, capsys):
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "batch_size": 4096, "train_subset": 128}))
    args = ["search", "--method", "tas", "--arch", "resnet20-cifar", "--recipe", str(recipe), "--out",
            str(tmp_path / "o"), "--device", "cpu"]
    assert main([*args, "--dataset", "fashion-mnist"]) == 2
    assert "larger than half the training set" in capsys.readouterr().err
    assert main([*args, "--dataset", "imagenet"]) == 2
    assert "no ImageNet search" in capsys.readouterr().err
    assert main([*args[:4], "resnet18-imagenet", *args[5:], "--dataset", "fashion-mnist"]) == 2
    assert "resnet-cifar" in capsys.readouterr().err
