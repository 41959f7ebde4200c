"""The one epoch loop of every training in the suite: a network's (re)training, a super-network's
search, and every method that comes next.

A job (`EpochJob`) supplies what is its own: the state to checkpoint, what the checkpoint must
match to be resumed, and one epoch. The loop owns the rest, the same for all: the run folder
(writable before the first epoch, stale results removed), seeding (everything random in epoch
`e` is a function of (seed, e), so a resumed run ends bit-identical to an uninterrupted one),
resume with the identity check, `stop_after`, the atomic checkpoint and CSV log after every
epoch, Ctrl-C/SIGTERM into one line, and, for the job's steps, the per-step learning rate, the
NaN/Inf stop, a progress bar and the run's provenance. The device is the loop's: multi-device
data parallelism goes here, once.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from nas_impl.errors import TrainingDiverged
from nas_impl.io import write_csv_rows_atomic
from nas_impl.training.checkpoint import FORMAT, check_resumable, load_checkpoint, require_keys, save_checkpoint
from nas_impl.training.provenance import run_provenance
from nas_impl.training.run_dir import interruptible, last_checkpoint_note, prepare_run_dir, remove_files
from nas_impl.training.schedule import lr_at
from nas_impl.training.seeding import epoch_seed, make_deterministic, seed_everything

LOOP_KEYS = ("epoch", "history", "elapsed_s")


@dataclass(frozen=True)
class RunFiles:
    """The files of one run folder: the checkpoint, the per-epoch log and what a finished run leaves."""

    log: str
    log_columns: Sequence[str]
    results: tuple[str, ...]  # removed when a run starts (glob patterns)
    checkpoint: str = "checkpoint.pt"
    checkpoint_format: str = FORMAT

    @property
    def fresh(self) -> tuple[str, ...]:
        """Removed too when a run starts without --resume."""
        return (self.checkpoint, self.log)


class EpochJob(Protocol):
    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (recipe, seed, the network searched or trained)."""

    def state(self) -> dict[str, Any]:
        """Model and optimizer states to checkpoint after every epoch."""

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        """Restore `state` (read from the checkpoint at `path`)."""

    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        """Train epoch `epoch` (0-based); the log row, with `epoch` (1-based) and `epoch_s`."""

    # Optional: `finished() -> bool`, for a job whose number of epochs is only a bound (AutoShrink's
    # shrink steps end at the keep fraction): the loop ends, as finished, as soon as it is True.


class EpochLoop:
    def __init__(self, out_dir: str | Path, files: RunFiles, *, seed: int, epochs: int,
                 device: torch.device | str = "cpu", resume_view=None, writes: bool = True) -> None:
        self.out_dir, self.files = Path(out_dir), files
        self.writes = writes  # False on the other ranks of a data-parallel run: rank 0 writes
        self.seed, self.epochs = seed, epochs
        self.device = torch.device(device)
        make_deterministic(self.device)
        # A job whose identity leaves keys out (AutoSlim's slimming-only keys) compares a view of the state.
        self.resume_view = resume_view or (lambda state: state)
        self.history: list[dict[str, Any]] = []
        self.elapsed_s = 0.0
        self.start_epoch = 0
        self.stopped_after: int | None = None  # the epoch a run stopped after on request (`stop_after`)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / self.files.checkpoint

    def run(self, job: EpochJob, resume: bool = False, stop_after: int | None = None) -> bool:
        """Train to the last epoch (True) or stop after epoch `stop_after`, as an interruption would (False)."""
        if self.writes:
            prepare_run_dir(self.out_dir)
        seed_everything(self.seed)
        if resume and self.checkpoint_path.exists():
            self._resume(job)
        elif self.writes:
            remove_files(self.out_dir, self.files.fresh)
        if self.writes:
            remove_files(self.out_dir, self.files.results)
        last = self.epochs if stop_after is None else min(stop_after, self.epochs)
        finished = getattr(job, "finished", lambda: False)
        with interruptible(self.checkpoint_path, lambda: len(self.history)):
            for epoch in range(self.start_epoch, last):
                if finished():
                    break
                torch.manual_seed(epoch_seed(self.seed, epoch))
                row = job.run_epoch(epoch, self)
                self.elapsed_s += row["epoch_s"]
                self.history.append(row)
                self._save(job, epoch + 1)
        done = last == self.epochs or finished()
        self.stopped_after = None if done else last
        return done

    def stopped(self) -> dict[str, int]:
        """What a run that stopped early on request returns instead of its results."""
        return {"stopped_after_epoch": self.stopped_after}

    def _save(self, job: EpochJob, epoch: int) -> None:
        if not self.writes:
            return
        state = {**job.identity(), **job.state(), "epoch": epoch, "history": self.history,
                 "elapsed_s": self.elapsed_s}
        save_checkpoint(state, self.checkpoint_path, fmt=self.files.checkpoint_format)
        self._write_log()

    def _resume(self, job: EpochJob) -> None:
        path = self.checkpoint_path
        state = load_checkpoint(path, map_location=self.device, fmt=self.files.checkpoint_format)
        check_resumable(self.resume_view(state), job.identity(), path)
        require_keys(state, LOOP_KEYS, path)
        job.load_state(state, path)
        self.start_epoch, self.history, self.elapsed_s = state["epoch"], state["history"], state["elapsed_s"]
        self._write_log()  # a declared output the workflow deleted before rerunning the job

    def _write_log(self) -> None:
        if not self.writes:
            return
        write_csv_rows_atomic(self.out_dir / self.files.log, self.history, self.files.log_columns)

    # -- what a job's steps use -------------------------------------------------------------------
    @staticmethod
    def set_lr(recipe, optimizer: torch.optim.Optimizer, epoch: int, step: int, steps: int) -> float:
        """The recipe's learning rate at this step (schedules are per step), set on every group."""
        lr = lr_at(recipe, epoch * steps + step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def check_finite(self, values: torch.Tensor | Mapping[str, float], what: str, epoch: int, step: int,
                     lr: float, fix: str) -> None:
        """Stop with one line naming the step and the last good checkpoint when a loss is NaN/Inf."""
        if isinstance(values, torch.Tensor):
            finite = bool(torch.isfinite(values).all().item())
        else:
            finite = all(math.isfinite(v) for v in values.values())
        if not finite:
            shown = "" if isinstance(values, torch.Tensor) else f": {dict(values)}"
            raise TrainingDiverged(f"{what} at epoch {epoch + 1}, step {step + 1} (lr {lr:.4g}){shown}; {fix}; "
                                   f"{last_checkpoint_note(self.checkpoint_path)}")

    def progress(self, iterable: Iterable, total: int, epoch: int) -> Iterable:
        """A progress bar on a terminal (tqdm, when installed); the iterable itself otherwise."""
        if not sys.stderr.isatty():
            return iterable
        try:
            from tqdm import tqdm
        except ImportError:
            return iterable
        return tqdm(iterable, total=total, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False, dynamic_ncols=True)

    def provenance(self) -> dict[str, Any]:
        return run_provenance(self.device, self.seed)
