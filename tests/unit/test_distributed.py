"""Data-parallel training under torchrun (nas_impl/training/distributed.py) on CPU with gloo: two
processes, each training on its half of every global batch, give the losses, accuracies and
weights of one process on the same data (the network has no batch norm, whose per-share
statistics would differ); a run stopped or killed with two processes resumes from its checkpoint,
with two processes or one."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from nas_impl.errors import NasReproError
from nas_impl.training.distributed import World

# memnas-cells with every op a plain 1x1 conv: no batch norm, no dropout.
ARCH = {"family": "memnas-cells", "width": 4, "width_mults": [1] * 5,
        "blocks": [["in14:none + in14:none -> add @13"]] * 5}
RECIPE = {"epochs": 3, "batch_size": 32, "eval_batch_size": 100, "lr": 0.05,
          "augment": {"crop_padding": 2, "flip": True}, "train_subset": 384, "test_subset": 200}


def train(tmp_path, out, processes=1, *extra, wait=True):
    (tmp_path / "arch.yaml").write_text(yaml.safe_dump(ARCH))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    verb = ["-m", "nas_impl.cli", "train", "--arch", str(tmp_path / "arch.yaml"), "--recipe",
            str(tmp_path / "recipe.yaml"), "--dataset", "fashion-mnist", "--out", str(tmp_path / out),
            "--device", "cpu", "--seed", "0", *extra]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, *launcher, *verb]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def log(tmp_path, out):
    with open(tmp_path / out / "train_log.csv") as f:
        return list(csv.DictReader(f))


def weights(tmp_path, out):
    return torch.load(tmp_path / out / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def assert_same_run(tmp_path, a, b):
    rows_a, rows_b = log(tmp_path, a), log(tmp_path, b)
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b] == ["1", "2", "3"]
    for ra, rb in zip(rows_a, rows_b):
        for key in ("lr", "train_loss", "test_loss"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5), key
        assert (ra["train_top1"], ra["test_top1"]) == (rb["train_top1"], rb["test_top1"])
    wa, wb = weights(tmp_path, a), weights(tmp_path, b)
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp")
    train(path, "one")
    return path


def test_two_processes_train_what_one_trains(single):
    train(single, "two", 2)
    assert_same_run(single, "one", "two")
    metrics = (single / "two" / "metrics.json").read_text()
    assert '"world_size": 2' in metrics


def test_a_two_process_checkpoint_resumes_with_one_process(single):
    train(single, "switch", 2, "--stop-after", "1")
    assert len(log(single, "switch")) == 1 and not (single / "switch" / "metrics.json").exists()
    train(single, "switch", 1, "--resume")
    assert_same_run(single, "one", "switch")


def test_a_killed_two_process_run_resumes_from_its_checkpoint(single):
    run = train(single, "killed", 2, wait=False)
    checkpoint = single / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), run.stderr.read().decode()[-2000:] if run.poll() is not None else "no checkpoint"
    os.killpg(run.pid, signal.SIGKILL)  # torchrun and both workers, mid-run
    run.wait()
    finished_before_kill = len(log(single, "killed"))
    assert 1 <= finished_before_kill < 3  # killed after a checkpoint, before the end
    train(single, "killed", 2, "--resume")
    assert_same_run(single, "one", "killed")


def test_a_batch_that_does_not_split_over_the_processes_is_one_error():
    World(0, 2).check_batch(32)
    with pytest.raises(NasReproError, match="recipe key 'batch_size' = 30 does not split over 4 processes"):
        World(0, 4).check_batch(30)
    assert World(1, 2).shard(torch.arange(6)).tolist() == [3, 4, 5]
    assert World().shard(torch.arange(6)).tolist() == list(range(6))
