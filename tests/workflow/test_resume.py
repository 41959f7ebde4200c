"""A training killed through Snakemake resumes when the same command is rerun.

One tiny run (ResNet-20, 4 epochs of a few seconds on 512 Fashion-MNIST images) is started
with Snakemake and the whole Snakemake process group is SIGKILLed once `train_log.csv` shows
epoch 1 done (epoch 2 is then in progress). The same command is rerun (after `--unlock`, as a
user must after a kill -9): epoch 1 is not repeated, and the final weights are bit-identical to
those of an uninterrupted run of the same config, which runs meanwhile in another folder.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
EPOCHS = 4
CONFIG = ["scale=smoke", "papers=[baselines]", "experiments=[resnet20-cifar10]",
          f"recipe_overrides={{epochs: {EPOCHS}, train_subset: 512, test_subset: 200, batch_size: 64}}"]
RUN = "results/smoke/baselines/resnet20-cifar10/seed0"
TARGET = f"{RUN}/metrics.json"  # the train job's completion marker
TIMEOUT_S = 600


def command(workdir: Path, *extra: str) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
            "--rerun-incomplete", *extra, "--config", *CONFIG, "--", TARGET]


def start(workdir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = open(workdir / f"snakemake-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(command(workdir, *extra), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(proc: subprocess.Popen, workdir: Path) -> None:
    try:
        code = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    if code != 0:
        logs = "\n".join(p.read_text()[-3000:] for p in sorted(workdir.glob("snakemake-*.log")))
        train_logs = "\n".join(p.read_text()[-2000:] for p in workdir.glob("results/smoke/logs/**/train/*.log"))
        raise AssertionError(f"snakemake exited with {code} in {workdir}:\n{logs}\n{train_logs}")


def rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def model_tensors(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def tmp_files(workdir: Path) -> list[str]:
    return [str(Path(root, name).relative_to(workdir)) for root, _, names in os.walk(workdir / "results")
            for name in names if name.endswith(".tmp")]


@pytest.mark.slow
def test_killed_training_resumes_bit_identically(tmp_path):
    interrupted, uninterrupted = tmp_path / "interrupted", tmp_path / "uninterrupted"
    interrupted.mkdir()
    uninterrupted.mkdir()
    run = interrupted / RUN
    victim = start(interrupted)
    reference = start(uninterrupted)  # runs meanwhile: the same config, never interrupted
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not rows(run / "train_log.csv"):
            assert victim.poll() is None, f"snakemake ended (code {victim.returncode}) before epoch 1 was logged"
            assert time.monotonic() < deadline, "epoch 1 was not logged in time"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # Snakemake and the training job with it
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    time.sleep(0.5)  # nothing of the killed group may still be writing
    before = rows(run / "train_log.csv")
    assert not (run / "metrics.json").exists() and len(before) < EPOCHS, (
        f"the kill landed after training finished ({len(before)} of {EPOCHS} epochs logged): the test proves "
        "nothing; make its epochs longer (train_subset)")
    assert (run / "checkpoint.pt").is_file(), "no checkpoint survived the kill"
    epochs_before = len(before)

    subprocess.run(command(interrupted, "--unlock"), cwd=interrupted, check=True, capture_output=True, timeout=300)
    finish(start(interrupted), interrupted)
    finish(reference, uninterrupted)

    after = rows(run / "train_log.csv")
    assert [r["epoch"] for r in after] == [str(e) for e in range(1, EPOCHS + 1)]
    assert after[:epochs_before] == before, "the epochs done before the kill were run again (their timings differ)"
    train_log = (interrupted / "results/smoke/logs/baselines/train/resnet20-cifar10-seed0.log").read_text()
    assert "resuming from checkpoint.pt" in train_log, train_log[-2000:]
    assert (run / "metrics.json").is_file()
    assert not tmp_files(interrupted), tmp_files(interrupted)

    resumed, straight = model_tensors(run / "checkpoint.pt"), model_tensors(uninterrupted / RUN / "checkpoint.pt")
    assert resumed.keys() == straight.keys() and resumed
    different = [name for name in resumed if not torch.equal(resumed[name], straight[name])]
    assert not different, f"resumed weights differ from an uninterrupted run's: {different[:5]}"
