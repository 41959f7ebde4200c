"""The shared epoch loop on a toy job: seeding per (seed, epoch), stop and resume, the identity
check, the log, the per-step learning rate and the NaN stop. (The trainer, the TAS search and
AutoSlim's super-network run through it; their own tests check bit-exact resume end to end.)"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from nas_impl.errors import NasReproError, TrainingDiverged
from nas_impl.training.epoch_loop import EpochLoop, RunFiles
from nas_impl.training.recipe import recipe_from_dict

FILES = RunFiles(log="log.csv", log_columns=["epoch", "draw", "weight", "epoch_s"], results=("done.json",),
                 checkpoint="state.pt")


class ToyJob:
    """One weight, moved each epoch by a random draw from the global generator the loop seeds."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.weight = torch.zeros(())

    def identity(self):
        return {"seed": self.seed, "recipe": {"lr": 0.1}}

    def state(self):
        return {"weight": self.weight.clone()}

    def load_state(self, state, path):
        self.weight = state["weight"]

    def run_epoch(self, epoch, loop):
        draw = torch.rand(()).item()
        self.weight = self.weight + draw
        return {"epoch": epoch + 1, "draw": draw, "weight": self.weight.item(), "epoch_s": 0.01}


def loop_at(path: Path, seed: int = 0, epochs: int = 3) -> EpochLoop:
    return EpochLoop(path, FILES, seed=seed, epochs=epochs)


class UntilJob(ToyJob):
    """A job whose epoch count is only a bound: it is finished once its weight passes `limit`."""

    def __init__(self, limit: float) -> None:
        super().__init__()
        self.limit = limit

    def finished(self):
        return self.weight.item() > self.limit


def test_a_job_that_finishes_early_ends_the_loop_as_finished(tmp_path):
    bound = loop_at(tmp_path / "bound", epochs=50)
    whole = UntilJob(limit=1.0)
    assert bound.run(whole) and bound.stopped_after is None
    epochs = len(bound.history)
    assert 1 < epochs < 50 and whole.finished()
    assert not UntilJob(1.0).finished() and bound.history[-2]["weight"] <= 1.0  # it ran until it was finished
    first = loop_at(tmp_path / "parts", epochs=50)
    assert not first.run(UntilJob(limit=1.0), stop_after=1) and first.stopped_after == 1
    rest, job = loop_at(tmp_path / "parts", epochs=50), UntilJob(limit=1.0)
    assert rest.run(job, resume=True) and rest.stopped_after is None
    assert [r["draw"] for r in rest.history] == [r["draw"] for r in bound.history]
    again = loop_at(tmp_path / "parts", epochs=50)
    assert again.run(UntilJob(limit=1.0), resume=True) and len(again.history) == epochs  # nothing left to run


def test_each_epoch_is_seeded_from_seed_and_epoch_and_resume_is_exact(tmp_path):
    full_loop, full = loop_at(tmp_path / "full"), ToyJob()
    assert full_loop.run(full)
    stopped_loop, job = loop_at(tmp_path / "resumed"), ToyJob()
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / "done.json").write_text("{}")  # an old finished run's result
    assert not stopped_loop.run(job, stop_after=1)
    assert not (tmp_path / "resumed" / "done.json").exists()
    torch.rand(100)  # whatever happened in between
    resumed_loop, resumed = loop_at(tmp_path / "resumed"), ToyJob()
    assert resumed_loop.run(resumed, resume=True)
    assert resumed.weight.item() == full.weight.item()
    assert [r["draw"] for r in resumed_loop.history] == [r["draw"] for r in full_loop.history]
    assert len({r["draw"] for r in full_loop.history}) == 3  # a new draw every epoch
    rows = list(csv.DictReader((tmp_path / "resumed" / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_a_checkpoint_of_another_identity_is_refused_and_nothing_is_removed(tmp_path):
    loop_at(tmp_path).run(ToyJob(seed=0), stop_after=1)
    (tmp_path / "done.json").write_text("{}")
    with pytest.raises(NasReproError, match="cannot resume from .*state.pt: its seed differ"):
        loop_at(tmp_path, seed=1).run(ToyJob(seed=1), resume=True)
    assert (tmp_path / "done.json").exists() and (tmp_path / "state.pt").exists()


def test_resuming_a_finished_run_rewrites_its_log(tmp_path):
    loop_at(tmp_path).run(ToyJob())
    log = (tmp_path / "log.csv").read_text()
    (tmp_path / "log.csv").unlink()
    assert loop_at(tmp_path).run(ToyJob(), resume=True)
    assert (tmp_path / "log.csv").read_text() == log


def test_set_lr_follows_the_recipe_per_step_and_check_finite_names_the_step(tmp_path):
    recipe = recipe_from_dict({"epochs": 2, "lr": 0.1, "schedule": "cosine", "warmup_epochs": 0})
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param, torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = [EpochLoop.set_lr(recipe, optimizer, epoch, step, 4) for epoch in range(2) for step in range(4)]
    assert lrs[0] == pytest.approx(0.1) and lrs == sorted(lrs, reverse=True)
    assert all(group["lr"] == lrs[-1] for group in optimizer.param_groups)
    loop = loop_at(tmp_path)
    loop.check_finite({"loss": 1.0}, "diverged", 0, 0, 0.1, "lower 'lr'")
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 2, step 3 \(lr 0.1\): \{'loss': nan\}; lower 'lr'; "
                                               r"no checkpoint was written"):
        loop.check_finite({"loss": float("nan")}, "diverged", 1, 2, 0.1, "lower 'lr'")
    with pytest.raises(TrainingDiverged, match="loss NaN at epoch 1, step 1"):
        loop.check_finite(torch.tensor(float("inf")), "loss NaN", 0, 0, 0.1, "fix")
