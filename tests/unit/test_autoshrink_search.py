"""AutoShrink's CNN search end to end through `nasrepro search` on Fashion-MNIST: every step's
candidates are distinct reachable edges of the graph before it, the removed edge is the best
score's, the score is the official objective of the candidate's accuracy and MACs (recounted
here), and a search interrupted after a step and resumed writes what an uninterrupted one writes."""

from __future__ import annotations

import json

import pytest
import yaml

from nas_impl.cli import main
from nas_impl.methods.autoshrink.shrink import cnn_score
from nas_impl.metrics import count_macs
from nas_impl.models import build_model
from nas_impl.models.dag import complete_dag, reachable_edges
from nas_impl.models.shrink_cnn import search_network_spec

BASE = {"family": "shrink-cnn", "stem": "cifar", "stem_channels": 8, "nodes": 3, "edges": [[0, 1], [1, 2]],
        "ops": ["conv1x1", "sep3x3"], "cells": [1, 1], "filters": [4, 8], "pool": [1, 2], "head_channels": None}
RECIPE = {"epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": 4e-3, "weight_decay": 1e-5, "schedule": "constant",
          "augment": {}, "nodes": 4, "k": 2, "keep_fraction": 0.3, "per_class_train": 4, "per_class_valid": 2}


def search(tmp_path, out, *extra):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    return main(["search", "--method", "autoshrink", "--arch", str(tmp_path / "base.yaml"), "--recipe",
                 str(tmp_path / "recipe.yaml"), "--dataset", "fashion-mnist", "--out", str(tmp_path / out),
                 "--device", "cpu", "--seed", "3", *extra])


def test_the_steps_follow_the_official_rules_and_resume_exactly(tmp_path, capsys):
    assert search(tmp_path, "whole") == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "whole/search.json").read_text())
    steps, ops = summary["details"]["steps"], summary["details"]["ops"]
    assert sorted(ops) == ["conv1x1", "sep3x3", "sep3x3"]  # balanced: node i's op is i mod 2, shuffled
    edges = complete_dag(4)
    for step in steps:
        removed = [c["removed"] for c in step["candidates"]]
        assert len(removed) == min(2, len(edges)) and all(e in edges for e in removed)
        assert len({tuple(e) for e in removed}) == len(removed)
        for c in step["candidates"]:
            graph = [e for e in edges if e != c["removed"]]
            macs = count_macs(build_model(search_network_spec(graph, ops, "relu", 10, 1)), (1, 28, 28))
            assert c["macs"] == macs and c["score"] == pytest.approx(cnn_score(c["valid_acc"], macs))
        best = max(step["candidates"], key=lambda c: c["score"])
        assert step["removed"] == best["removed"]
        edges = reachable_edges([e for e in edges if e != step["removed"]])
        assert step["edges"] == edges
    assert len(edges) <= round(6 * 0.3) and len(steps) >= 2 and len(steps[-2]["edges"]) > round(6 * 0.3)
    chosen = max(steps, key=lambda s: max(c["score"] for c in s["candidates"]))
    assert summary["targets"]["cell"]["arch"]["edges"] == chosen["edges"]  # snapshot: the best score's step

    assert search(tmp_path, "parts", "--stop-after", "1") == 0
    assert not (tmp_path / "parts/search.json").exists()
    assert search(tmp_path, "parts", "--resume") == 0, capsys.readouterr().err
    resumed = json.loads((tmp_path / "parts/search.json").read_text())
    assert resumed["details"]["steps"] == steps and resumed["targets"] == summary["targets"]


RNN_BASE = {"family": "dag-rnn-lm", "vocab_size": 10000, "hidden_dim": 16, "nodes": 6,
            "edges": [[0, 1], [0, 2], [1, 2]], "ops": ["tanh"] * 6}
RNN_RECIPE = {"epochs": 2, "batch_size": 8, "eval_batch_size": 8, "optimizer": "sgd", "lr": 20.0, "momentum": 0.0,
              "weight_decay": 0.0, "schedule": "constant", "grad_clip": 0.25, "augment": {}, "nodes": 4, "k": 2,
              "keep_fraction": 0.5, "proxy_lines": [60, 8, 8], "hidden": 8, "ops_seed": 1}


def rnn_search(tmp_path, shared_data, out, *extra, recipe=None):
    (tmp_path / "rnn.yaml").write_text(yaml.safe_dump(RNN_BASE))
    (tmp_path / "rnn-recipe.yaml").write_text(yaml.safe_dump(recipe or RNN_RECIPE))
    return main(["search", "--method", "autoshrink", "--arch", str(tmp_path / "rnn.yaml"), "--recipe",
                 str(tmp_path / "rnn-recipe.yaml"), "--dataset", "ptb", "--data-root", str(shared_data),
                 "--out", str(tmp_path / out), "--device", "cpu", "--seed", "2", *extra])


def test_the_rnn_search_scores_perplexity_and_flops_and_resumes_exactly(tmp_path, shared_data, capsys):
    from nas_impl.methods.autoshrink.shrink import rnn_score

    assert rnn_search(tmp_path, shared_data, "whole") == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "whole/search.json").read_text())
    details = summary["details"]
    assert details["search"] == "rnn" and details["ops"][0] == "tanh" and len(details["ops"]) == 4
    assert set(details["ops"][1:]) <= {"relu", "sigmoid", "tanh", "identity"}
    edges = complete_dag(4)
    for step in details["steps"]:
        for c in step["candidates"]:
            graph = reachable_edges([e for e in edges if e != c["removed"]])
            assert c["flops"] == len(graph) * 8 * 8  # the official compute_flops: reachable edges x nhid^2
            ppl = c["valid_ppl"]
            assert ppl is None or c["score"] == pytest.approx(rnn_score(ppl, c["flops"]))
        best = max(step["candidates"], key=lambda c: c["score"])
        assert step["removed"] == best["removed"]
        edges = reachable_edges([e for e in edges if e != step["removed"]])
        assert step["edges"] == edges
    assert len(edges) <= round(6 * 0.5) and all(len(s["edges"]) > 3 for s in details["steps"][:-1])
    arch = summary["targets"]["cell"]["arch"]
    chosen = max(details["steps"], key=lambda s: max(c["score"] for c in s["candidates"]))
    assert {k: arch[k] for k in RNN_BASE} == {**RNN_BASE, "nodes": 4, "edges": chosen["edges"], "ops": details["ops"]}
    proxy = summary["record"]["proxy"]
    assert proxy["lines"] == [60, 8, 8] and proxy["pretrained_vectors"] == 0
    log = (tmp_path / "whole/search_log.csv").read_text().splitlines()
    assert len(log) == 1 + len(details["steps"]) and log[0].startswith("step,edges_left")
    assert log[1].split(",")[3] == "-".join(map(str, details["steps"][0]["removed"]))

    assert rnn_search(tmp_path, shared_data, "parts", "--stop-after", "1") == 0
    assert len((tmp_path / "parts/search_log.csv").read_text().splitlines()) == 2
    assert rnn_search(tmp_path, shared_data, "parts", "--resume") == 0, capsys.readouterr().err
    resumed = json.loads((tmp_path / "parts/search.json").read_text())
    assert resumed["details"]["steps"] == details["steps"] and resumed["targets"] == summary["targets"]
    def untimed(run):  # every column but the step's seconds
        return [line.rsplit(",", 1)[0] for line in (tmp_path / run / "search_log.csv").read_text().splitlines()]
    assert untimed("parts") == untimed("whole") and untimed("whole")[0].endswith("stopped_early")
    (tmp_path / "parts/search_checkpoint.pt").unlink()  # a fresh start (the workflow's guard removed it)
    assert rnn_search(tmp_path, shared_data, "parts", "--stop-after", "0") == 0
    assert not (tmp_path / "parts/search_log.csv").exists()  # no stale steps


@pytest.mark.parametrize("change, key", [({"optimizer": "adam"}, "optimizer"), ({"momentum": 0.9}, "optimizer"),
                                         ({"ops": ["sep3x3", "conv1x1", "sep3x3"]}, "ops")])
def test_an_rnn_search_recipe_that_does_not_fit_the_rnn_search_is_one_line(tmp_path, shared_data, capsys, change,
                                                                            key):
    assert rnn_search(tmp_path, shared_data, "bad", recipe={**RNN_RECIPE, **change}) != 0
    err = capsys.readouterr().err
    assert "RNN search" in err and f"'{key}'" in err and "Traceback" not in err


def test_the_cnn_search_refuses_an_rnn_recipe(tmp_path, capsys):
    recipe = {**RECIPE, "optimizer": "sgd", "momentum": 0.0}
    (tmp_path / "sgd.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    code = main(["search", "--method", "autoshrink", "--arch", str(tmp_path / "base.yaml"), "--recipe",
                 str(tmp_path / "sgd.yaml"), "--dataset", "fashion-mnist", "--out", str(tmp_path / "o"),
                 "--device", "cpu"])
    assert code != 0 and "CNN search" in capsys.readouterr().err
