"""`nasrepro` verbs end to end on small real data, and their error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas_impl.cli import main
from nas_impl.replication import load_replication

TINY_RECIPE = {"epochs": 1, "batch_size": 64, "lr": 0.05, "train_subset": 256, "test_subset": 200,
               "augment": {"crop_padding": 2, "flip": True}}


def run_cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_metrics_prints_the_architecture_metrics(capsys):
    code, out, _ = run_cli(capsys, "metrics", "resnet20-cifar", "--input-size", "3x32x32", "--json")
    assert code == 0
    assert {"params", "macs", "param_bytes", "peak_activation_bytes"} <= set(out)
    assert 40e6 < out["macs"] < 41.5e6  # ResNet-20: ~40.8M MACs
    assert out["param_bytes"] == 4 * out["params"]


def test_train_then_evaluate(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    arch = tmp_path / "arch.yaml"
    arch.write_text(yaml.safe_dump({"family": "resnet-cifar", "depth": 8}))
    out_dir = tmp_path / "run"
    code, summary, err = run_cli(capsys, "train", "--arch", str(arch), "--recipe", str(recipe),
                                 "--dataset", "fashion-mnist", "--out", str(out_dir), "--seed", "3", "--device", "cpu")
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert summary["top1"] == metrics["top1"] and metrics["run"]["seed"] == 3
    # The CIFAR spec was fitted to the 1-channel dataset, and the run says so.
    assert metrics["record"]["spec_adapted_to_dataset"]["in_channels"] == {"spec": 3, "dataset": 1}
    assert metrics["architecture"]["macs"] > 0
    code, result, err = run_cli(capsys, "evaluate", "--checkpoint", str(out_dir / "checkpoint.pt"), "--device", "cpu")
    assert code == 0, err
    assert result["top1"] == pytest.approx(metrics["top1"]) and result["images"] == 200


def test_prepare_data_verifies_and_summarises(tmp_path, capsys):
    code, out, err = run_cli(capsys, "prepare-data", "--dataset", "fashion-mnist", "--out", str(tmp_path / "s.json"))
    assert code == 0, err
    assert out["train_images"] == 60000 and out["input_size"] == [1, 28, 28]
    assert json.loads((tmp_path / "s.json").read_text()) == out


@pytest.mark.parametrize("argv, message", [
    (["metrics", "no/such/spec.yaml"], "no/such/spec.yaml"),
    (["metrics", "resnet20-cifar", "--input-size", "32x32"], "must look like CxHxW"),
    (["prepare-data", "--dataset", "cifar11"], "cifar11"),
    (["evaluate", "--checkpoint", "missing/checkpoint.pt"], "does not exist"),
])
def test_errors_are_one_clear_line(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith(f"nasrepro {argv[0]}: error:") and message in err
    assert "Traceback" not in err


def test_console_script_is_installed():
    exe = shutil.which("nasrepro", path=str(Path(sys.executable).parent))
    assert exe, "the nasrepro console script is missing: pip install -e ."
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for verb in ("prepare-data", "train", "evaluate", "metrics"):
        assert verb in out


TAS = str(Path(__file__).resolve().parents[2] / "replications/tas")


def test_recipe_of_a_search_merges_its_own_values_with_sources(tmp_path, capsys):
    out = tmp_path / "search.yaml"
    code, _, err = run_cli(capsys, "recipe", "--replication", TAS, "--search", "tas-C010-ResNet56", "--scale", "paper",
                           "--set", "epochs=2", "--out", str(out))
    assert code == 0, err
    written = yaml.safe_load(out.read_text())
    assert written["target_ratio"] == 0.47 and written["epochs"] == 2 and written["arch_lr"] == 0.001
    assert "README" in written["sources"]["target_ratio"] and "CIFARX" in written["sources"]["batch_size"]
    assert "epochs" not in written["sources"]  # overridden: the paper's source no longer applies
    code, _, err = run_cli(capsys, "recipe", "--replication", TAS, "--search", "nope", "--scale", "paper",
                           "--out", str(out))
    assert code == 2 and "no search 'nope'" in err


def test_arch_of_a_searched_experiment_takes_the_searched_shape(tmp_path, capsys):
    searched = tmp_path / "searched.yaml"
    shutil.copy(Path(TAS) / "archs/C010-ResNet20.yaml", searched)
    spec = yaml.safe_load(searched.read_text())
    searched.write_text(yaml.safe_dump({**spec, "in_channels": 1}))  # searched on Fashion-MNIST
    out = tmp_path / "arch.yaml"
    code, _, err = run_cli(capsys, "arch", "--replication", TAS, "--experiment", "searched-C010-ResNet20-kd",
                           "--searched", str(searched), "--out", str(out))
    assert code == 0, err
    written = yaml.safe_load(out.read_text())
    assert written["in_channels"] == 3 and written["channels"] == spec["channels"]  # the paper's input
    code, _, err = run_cli(capsys, "arch", "--replication", TAS, "--experiment", "searched-C010-ResNet20-kd",
                           "--out", str(out))
    assert code == 2 and "needs --searched" in err
    code, _, err = run_cli(capsys, "arch", "--replication", TAS, "--experiment", "C010-ResNet20",
                           "--searched", str(searched), "--out", str(out))
    assert code == 2 and "needs no --searched" in err


def test_archs_writes_every_run_as_arch_and_metrics_would_one_at_a_time(tmp_path, capsys):
    """The batch verb equals `arch` + `metrics --dataset` per run (counted once per distinct spec)."""
    experiments = ["ResNet20-C10", "C010-ResNet20", "ResNet56-C100"]
    code, out, err = run_cli(capsys, "archs", "--replication", TAS, "--results", str(tmp_path / "batch"),
                             "--experiment", *experiments, "--seed", "0", "1")
    assert code == 0, err
    assert out["runs"] == 6 and out["distinct_architectures"] == 3
    rep = load_replication(TAS)
    for name in experiments:
        single = tmp_path / "single" / name
        code, _, err = run_cli(capsys, "arch", "--replication", TAS, "--experiment", name,
                               "--out", str(single / "arch.yaml"))
        assert code == 0, err
        code, expected, err = run_cli(capsys, "metrics", str(single / "arch.yaml"), "--dataset",
                                      rep.experiments[name].dataset)
        assert code == 0, err
        for seed in (0, 1):
            folder = tmp_path / "batch" / name / f"seed{seed}"
            assert (folder / "arch.yaml").read_text() == (single / "arch.yaml").read_text()
            measured = json.loads((folder / "arch_metrics.json").read_text())
            assert {k: v for k, v in measured.items() if k != "spec"} == {k: v for k, v in expected.items() if k != "spec"}
    code, _, err = run_cli(capsys, "archs", "--replication", TAS, "--results", str(tmp_path / "x"),
                           "--experiment", "searched-C010-ResNet20-kd", "--seed", "0")
    assert code == 2 and "nasrepro arch --searched" in err and not (tmp_path / "x").exists()


def test_arch_metrics_out_writes_what_metrics_prints(tmp_path, capsys):
    out = tmp_path / "arch.yaml"
    code, _, err = run_cli(capsys, "arch", "--replication", TAS, "--experiment", "searched-C010-ResNet20-kd",
                           "--searched", str(Path(TAS) / "archs/C010-ResNet20.yaml"), "--out", str(out),
                           "--metrics-out", str(tmp_path / "arch_metrics.json"))
    assert code == 0, err
    code, expected, _ = run_cli(capsys, "metrics", str(out), "--dataset", "cifar10")
    assert json.loads((tmp_path / "arch_metrics.json").read_text()) == expected


def test_train_teacher_flag_needs_a_distilling_recipe(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    args = ["train", "--arch", "resnet20-cifar", "--recipe", str(recipe), "--dataset", "fashion-mnist", "--out",
            str(tmp_path / "run"), "--device", "cpu"]
    code, _, err = run_cli(capsys, *args, "--teacher", "t.pt")
    assert code == 2 and "has no 'distill' section" in err
    recipe.write_text(yaml.safe_dump({**TINY_RECIPE, "distill": {"temperature": 4.0, "alpha": 0.9}}))
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "names no teacher: pass --teacher" in err


AUTOSLIM = str(Path(__file__).resolve().parents[2] / "replications/autoslim")
AUTOSLIM_RECIPE = {"epochs": 2, "batch_size": 32, "lr": 0.05, "train_subset": 200, "targets": ["0.5x", "0.3x"],
                   "divisions": 4, "width_min": 0.25, "slim_images": 40, "slim_batch_size": 20,
                   "calibration_batches": 2, "augment": {"crop_padding": 2, "flip": True}}


def _autoslim(capsys, tmp_path, out_dir, *extra, **changes):
    recipe, arch = tmp_path / "recipe.yaml", tmp_path / "resnet8.yaml"
    recipe.write_text(yaml.safe_dump({**AUTOSLIM_RECIPE, **changes}))
    arch.write_text(yaml.safe_dump({"family": "resnet-cifar", "depth": 8, "shortcut": "B"}))
    return run_cli(capsys, "search", "--method", "autoslim", "--arch", str(arch), "--recipe", str(recipe),
                   "--dataset", "fashion-mnist", "--out", str(out_dir), "--device", "cpu", *extra)


def test_autoslim_search_stages_resume_bit_exactly_and_record_every_target(tmp_path, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    code, summary, err = _autoslim(capsys, tmp_path, whole)
    assert code == 0, err
    assert set(summary["targets"]) == {"0.5x", "0.3x"} and summary["targets"]["0.3x"]["ratio_of_base"] <= 0.3
    code, out, err = _autoslim(capsys, tmp_path, parts, "--stage", "supernet", "--stop-after", "1")
    assert code == 0 and (out["stage"], out["stopped_after_epoch"]) == ("supernet", 1), err
    code, out, err = _autoslim(capsys, tmp_path, parts, "--stage", "supernet", "--resume")
    assert code == 0 and out["held_out_recalibrated"]["largest"]["top1"] >= 0, err
    code, _, err = _autoslim(capsys, tmp_path, parts, "--stage", "slim")
    assert code == 0, err
    logs = [pd.read_csv(d / "supernet_log.csv").drop(columns="epoch_s") for d in (whole, parts)]
    pd.testing.assert_frame_equal(*logs)  # interrupted and resumed == uninterrupted, bit for bit
    first, second = (json.loads((d / "search.json").read_text())["targets"] for d in (whole, parts))
    assert {t: v["arch"] for t, v in first.items()} == {t: v["arch"] for t, v in second.items()}
    assert (whole / "arch.yaml").read_text() == (whole / "arch-0.5x.yaml").read_text()
    # new targets reuse the super-network; a super-network setting does not
    code, out, err = _autoslim(capsys, tmp_path, parts, "--stage", "slim", targets=["0.4x"])
    assert code == 0 and list(out["targets"]) == ["0.4x"], err
    code, _, err = _autoslim(capsys, tmp_path, parts, "--stage", "slim", supernet_width=2.0)
    assert code == 2 and "cannot resume" in err
    code, _, err = _autoslim(capsys, tmp_path, parts, "--stage", "search")
    assert code == 2 and "has stages supernet, slim" in err
    code, _, err = _autoslim(capsys, tmp_path, tmp_path / "empty", "--stage", "slim")
    assert code == 2 and "run the 'supernet' stage first" in err


def test_arch_of_a_search_target_reads_its_shape_from_search_json(tmp_path, capsys):
    spec = {"family": "mobilenet-v2", "stem": "cifar", "num_classes": 10, "in_channels": 1, "dropout": 0.0,
            "channels": [8, 8, 24, 8, 24, 8] + [24, 16] * 14 + [64]}
    search_json = tmp_path / "search.json"
    search_json.write_text(json.dumps({"targets": {"0.5x": {"arch": spec}}}))
    out = tmp_path / "arch.yaml"
    code, _, err = run_cli(capsys, "arch", "--replication", AUTOSLIM, "--experiment", "AutoSlim-MBv2x0.35-C10-0.5x",
                           "--searched", str(search_json), "--out", str(out))
    assert code == 0, err
    written = yaml.safe_load(out.read_text())
    assert written["channels"] == spec["channels"] and written["in_channels"] == 3
    search_json.write_text(json.dumps({"targets": {"0.3x": {"arch": spec}}}))
    code, _, err = run_cli(capsys, "arch", "--replication", AUTOSLIM, "--experiment", "AutoSlim-MBv2x0.35-C10-0.5x",
                           "--searched", str(search_json), "--out", str(out))
    assert code == 2 and "no shape for target '0.5x'" in err
