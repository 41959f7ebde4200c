"""The one classification trainer every method's retraining uses.

One epoch = reseed from (seed, epoch), train over the loader with a per-step learning rate,
evaluate, append a row to the history, write `train_log.csv` and `checkpoint.pt` atomically.
`fit(resume=True)` continues from the last completed epoch and ends bit-identical (on CPU) to
an uninterrupted run, because everything random is a function of (seed, epoch).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_impl.errors import NasReproError, TrainingDiverged
from nas_impl.io import write_csv_rows_atomic, write_json_atomic
from nas_impl.training.checkpoint import (check_resumable, load_checkpoint, load_weights, model_from_checkpoint,
                                          require_keys, save_checkpoint)
from nas_impl.training.losses import classification_loss, distillation_loss
from nas_impl.training.optim import build_optimizer
from nas_impl.training.provenance import run_provenance
from nas_impl.training.recipe import Recipe
from nas_impl.training.run_dir import interruptible, last_checkpoint_note, prepare_run_dir, remove_files
from nas_impl.training.schedule import lr_at
from nas_impl.training.seeding import epoch_seed, make_deterministic, seed_everything

RESULTS = ("metrics.json",)  # what a finished run leaves; a new run removes it before it starts
FRESH = ("checkpoint.pt", "train_log.csv")  # removed too when a run starts without --resume
LOG_COLUMNS = ["epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "epoch_s", "images_per_s"]


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    n: int


def autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images go channels_last (a no-op for the TensorLoader's batches, which already are)."""
    if x.ndim == 4:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device, bf16: bool | None = None) -> EvalResult:
    bf16 = device.type == "cuda" if bf16 is None else bf16
    model.eval().to(memory_format=torch.channels_last)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros(2, device=device, dtype=torch.int64)  # top-1, top-5
    n = 0
    for x, y in loader:
        x, y = to_device(x, device), y.to(device, non_blocking=True)
        with autocast(device, bf16):
            logits = model(x)
        loss_sum += torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top5 == y[:, None]
        correct += torch.stack([hits[:, 0].sum(), hits.any(1).sum()])
        n += y.numel()
    if n == 0:
        raise NasReproError("evaluation loader yielded no batches: the split is empty or smaller than one batch")
    top1, top5 = (100.0 * correct.double() / n).tolist()
    return EvalResult(loss=loss_sum.item() / n, top1=top1, top5=top5, n=n)


def _progress(iterable: Iterable, total: int, desc: str):
    if not sys.stderr.isatty():
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        train_loader: Iterable,
        eval_loader: Iterable,
        *,
        out_dir: str | Path,
        seed: int,
        device: torch.device | str = "cpu",
        record: dict[str, Any] | None = None,
        extra_metrics: dict[str, Any] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.recipe, self.seed = recipe, seed
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.out_dir = Path(out_dir)
        self.record = record or {}
        self.extra_metrics = extra_metrics or {}  # written into metrics.json with the results
        self.bf16 = self.device.type == "cuda"
        make_deterministic(self.device)
        # channels_last: 1.5-2x faster convolutions on CPU (oneDNN) as on GPU (cuDNN), same numerics.
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, recipe)
        self.teacher = self._load_teacher()
        self.history: list[dict[str, float]] = []
        self.elapsed_s = 0.0
        self.start_epoch = 0
        self._lr = recipe.lr
        # On CUDA a per-step finiteness check would synchronise every step; check every few.
        self.check_every = 1 if self.device.type == "cpu" else 25

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def _load_teacher(self) -> nn.Module | None:
        if self.recipe.distill is None:
            return None
        if self.recipe.distill.teacher is None:
            raise NasReproError("the recipe distills but names no teacher: pass --teacher path/to/checkpoint.pt "
                                "(nasrepro train) or set distill.teacher")
        teacher = model_from_checkpoint(self.recipe.distill.teacher, self.device).eval()
        teacher = teacher.to(memory_format=torch.channels_last)
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # -- resume -------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "seed": self.seed, "spec": self.model.to_spec()}

    def _resume(self) -> None:
        state = load_checkpoint(self.checkpoint_path, map_location=self.device)
        check_resumable(state, self._identity(), self.checkpoint_path)
        require_keys(state, ("model", "optimizer", "epoch", "history", "elapsed_s"), self.checkpoint_path)
        load_weights(self.model, state["model"], self.checkpoint_path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = state["epoch"]
        self.history = state["history"]
        self.elapsed_s = state["elapsed_s"]
        # The log is a declared output the workflow deletes before a rerun: rewrite it from the checkpoint.
        write_csv_rows_atomic(self.out_dir / "train_log.csv", self.history, LOG_COLUMNS)

    def _save(self, epoch: int) -> None:
        save_checkpoint(
            {
                **self._identity(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "epoch": epoch,
                "history": self.history,
                "elapsed_s": self.elapsed_s,
                "record": self.record,
            },
            self.checkpoint_path,
        )
        write_csv_rows_atomic(self.out_dir / "train_log.csv", self.history, LOG_COLUMNS)

    # -- training -----------------------------------------------------------------------------
    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.bf16):
            logits = self.model(x)
            if self.teacher is None:
                return classification_loss(logits, y, self.recipe.label_smoothing), logits
            with torch.no_grad():
                teacher_logits = self.teacher(x)
        d = self.recipe.distill
        return distillation_loss(logits, teacher_logits, y, d.temperature, d.alpha, self.recipe.label_smoothing), logits

    def _check_finite(self, loss_sum: torch.Tensor, epoch: int, step: int) -> None:
        if not torch.isfinite(loss_sum).item():
            raise TrainingDiverged(
                f"loss became NaN/Inf at epoch {epoch + 1}, step {step + 1} (lr {self._lr:.4g}); "
                f"lower the recipe's 'lr' or add warm-up ('warmup_epochs'); {last_checkpoint_note(self.checkpoint_path)}"
            )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        torch.manual_seed(epoch_seed(self.seed, epoch))
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch)
        steps = len(self.train_loader)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        n = 0
        start = time.perf_counter()
        batches = _progress(self.train_loader, steps, f"epoch {epoch + 1}/{self.recipe.epochs}")
        for step, (x, y) in enumerate(batches):
            x, y = to_device(x, self.device), y.to(self.device, non_blocking=True)
            self._lr = lr_at(self.recipe, epoch * steps + step, steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr
            loss, logits = self._loss(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.recipe.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
            self.optimizer.step()
            loss_sum += loss.detach() * y.numel()
            correct += (logits.detach().argmax(1) == y).sum()
            n += y.numel()
            if (step + 1) % self.check_every == 0:
                self._check_finite(loss_sum, epoch, step)
        self._check_finite(loss_sum, epoch, steps - 1)
        seconds = time.perf_counter() - start
        return {
            "lr": self._lr,
            "train_loss": loss_sum.item() / max(n, 1),
            "train_top1": 100.0 * correct.item() / max(n, 1),
            "epoch_s": seconds,
            "images_per_s": n / seconds,
        }

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
        """Train to the recipe's last epoch (or stop after epoch `stop_after`, as an interruption would)."""
        prepare_run_dir(self.out_dir)
        seed_everything(self.seed)
        if resume and self.checkpoint_path.exists():
            self._resume()
        else:
            remove_files(self.out_dir, FRESH)
        remove_files(self.out_dir, RESULTS)
        last = self.recipe.epochs if stop_after is None else min(stop_after, self.recipe.epochs)
        with interruptible(self.checkpoint_path, lambda: len(self.history)):
            for epoch in range(self.start_epoch, last):
                row = {"epoch": epoch + 1, **self.train_epoch(epoch)}
                result = evaluate(self.model, self.eval_loader, self.device, self.bf16)
                row.update(test_loss=result.loss, test_top1=result.top1)
                self.elapsed_s += row["epoch_s"]
                self.history.append(row)
                self._save(epoch + 1)
        if last < self.recipe.epochs:
            return {"stopped_after_epoch": last}
        return self._write_metrics()

    def _write_metrics(self) -> dict[str, Any]:
        final = self.history[-1]
        metrics = {
            "top1": final["test_top1"],
            "test_loss": final["test_loss"],
            "best_top1": max(row["test_top1"] for row in self.history),
            "epochs": len(self.history),
            "train_images_per_s": sum(r["images_per_s"] for r in self.history) / len(self.history),
            "wall_time_s": self.elapsed_s,
            "spec": self.model.to_spec(),
            "recipe": self.recipe.to_dict(),
            "record": self.record,
            "run": run_provenance(self.device, self.seed),
            **self.extra_metrics,
        }
        if not math.isfinite(metrics["test_loss"]):
            raise TrainingDiverged(f"test loss is {metrics['test_loss']} after training; see {self.out_dir / 'train_log.csv'}")
        write_json_atomic(self.out_dir / "metrics.json", metrics)
        return metrics
