"""MemNAS's grow-and-trim search end to end through `nasrepro search` on Fashion-MNIST: round 0 trains
its sample of the one-cell nets, a ranked round trains the controller's top-k (the highest
predictions) and audit draws outside them, every reward is the chosen form of the candidate's
measured accuracy and memory against its round's base (recomputed here from the measured values and
an independent memory count), the best reward among the top-k grows on, and a search interrupted
after a round and resumed writes what an uninterrupted one writes."""

from __future__ import annotations

import json

import pytest
import yaml

from nas_impl.cli import main
from nas_impl.methods.memnas.candidates import initial, round_candidates
from nas_impl.methods.memnas.code_memory import code_feature_count, code_weight_count
from nas_impl.methods.memnas.reward import Measured, code_reward, paper_reward
from nas_impl.metrics import activation_memory, count_params
from nas_impl.models import build_model

BASE = {"family": "memnas-cells", "width": 4, "blocks": [["in14:fac7 + in14:sep3 -> add @13"]] * 5}
RECIPE = {"epochs": 1, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "schedule": "constant",
          "augment": {}, "train_subset": 200, "round0": 3, "rounds": 2, "k": 2, "audit": 1, "controller_from": 1,
          "controller_epochs": 10, "valid_size": 40, "reward": "paper", "lam": 0.8}


def search(tmp_path, out, *extra, **keys):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**RECIPE, **keys}))
    return main(["search", "--method", "memnas", "--arch", str(tmp_path / "base.yaml"), "--recipe",
                 str(tmp_path / "recipe.yaml"), "--dataset", "fashion-mnist", "--out", str(tmp_path / out),
                 "--device", "cpu", "--seed", "1", *extra])


def spec_of(blocks):
    return {**BASE, "in_channels": 1, "blocks": blocks}


def liveness(blocks):
    model = build_model(spec_of(blocks))
    return 4 * count_params(model, exclude_norm=True), activation_memory(model, (1, 28, 28))["peak_activation_bytes"]


def test_rounds_follow_the_method_and_resume_exactly(tmp_path, capsys):
    assert search(tmp_path, "whole") == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "whole/search.json").read_text())
    details = summary["details"]
    measured, bases = details["measured"], details["bases"]
    by_round = {r: [m for m in measured if m["round"] == r] for r in range(3)}

    # Round 0: 3 of the 98 one-cell nets, the most accurate is the first base; rewards against it.
    every = [spec["blocks"] for spec in initial(BASE)]
    assert len(by_round[0]) == 3 and all(m["blocks"] == every[m["index"]] for m in by_round[0])
    assert bases[0]["acc"] == max(m["acc"] for m in by_round[0])
    for r in (1, 2):
        base = next(m for m in measured if (m["round"], m["index"]) == (bases[r - 1]["round"], bases[r - 1]["index"]))
        proposed = [spec["blocks"] for spec in round_candidates(spec_of(base["blocks"]))]
        top = [m for m in by_round[r] if m["role"] == "top"]
        audit = [m for m in by_round[r] if m["role"] == "audit"]
        assert len(top) == 2 and len(audit) == 1
        assert all(m["blocks"] == proposed[m["index"]] for m in by_round[r])
        assert min(m["predicted"] for m in top) >= max(m["predicted"] for m in audit)
        for m in by_round[r]:
            weight, feature = liveness(m["blocks"])
            assert (m["weight_memory"], m["feature_memory"]) == (weight, feature)
            expected = paper_reward(Measured(base["acc"], base["weight_memory"], base["feature_memory"]),
                                    Measured(m["acc"], weight, feature), lam=0.8)
            assert m["reward"] == pytest.approx(expected)
        best = max(top, key=lambda m: m["reward"])
        assert (bases[r]["round"], bases[r]["index"]) == (r, best["index"])
    assert summary["targets"]["cells"]["arch"]["blocks"] == bases[2]["blocks"]
    log = (tmp_path / "whole/search_log.csv").read_text().splitlines()
    assert log[0].startswith("round,candidates,unbuildable,trained") and len(log) == 4

    assert search(tmp_path, "parts", "--stop-after", "2") == 0
    assert not (tmp_path / "parts/search.json").exists()
    assert search(tmp_path, "parts", "--resume") == 0, capsys.readouterr().err
    resumed = json.loads((tmp_path / "parts/search.json").read_text())
    assert resumed["details"]["measured"] == measured and resumed["targets"] == summary["targets"]


def test_the_code_memory_and_reward_are_the_official_counts(tmp_path, capsys):
    assert search(tmp_path, "code", round0=2, rounds=1, audit=0, memory="code", reward="code") == 0, \
        capsys.readouterr().err
    details = json.loads((tmp_path / "code/search.json").read_text())["details"]
    assert details["memory_unit"] == "elements"
    measured = details["measured"]
    base = next(m for m in measured if (m["round"], m["index"]) == (0, details["bases"][0]["index"]))
    for m in measured:
        spec = spec_of(m["blocks"])
        assert (m["weight_memory"], m["feature_memory"]) == (code_weight_count(spec), code_feature_count(spec))
        expected = code_reward(Measured(base["acc"], base["weight_memory"], base["feature_memory"]),
                               Measured(m["acc"], m["weight_memory"], m["feature_memory"]))
        assert m["reward"] == pytest.approx(expected)


@pytest.mark.parametrize("key,value,message", [
    ("reward", "lambda", "search recipe key 'reward' = 'lambda': must be one of code, paper"),
    ("round0", 99, "search recipe key 'round0' = 99: must be between 0 and 98"),
    ("valid_size", 500, "search recipe key 'valid_size' = 500: must be below the 200 training images"),
])
def test_a_bad_recipe_is_one_error_naming_the_key(tmp_path, capsys, key, value, message):
    assert search(tmp_path, "bad", **{key: value}) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
