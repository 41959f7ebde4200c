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
