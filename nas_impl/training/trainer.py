"""The one classification trainer every method's retraining uses.

One epoch = reseed from (seed, epoch), train over the loader with a per-step learning rate,
evaluate, append a row to the history, write `train_log.csv` and `checkpoint.pt` atomically.
`fit(resume=True)` continues from the last completed epoch and ends bit-identical (on CPU) to
an uninterrupted run, because everything random is a function of (seed, epoch).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_impl.errors import NasReproError, TrainingDiverged
from nas_impl.io import write_json_atomic
from nas_impl.training.checkpoint import load_weights, model_from_checkpoint, require_keys
from nas_impl.training.epoch_loop import EpochLoop, RunFiles
from nas_impl.training.losses import classification_loss, distillation_loss
from nas_impl.training.optim import build_optimizer
from nas_impl.training.recipe import Recipe

LOG_COLUMNS = ["epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "epoch_s", "images_per_s"]
# metrics.json: what a finished run leaves (removed when a run starts, so a run that dies never
# leaves an old result beside its own checkpoint).
FILES = RunFiles(log="train_log.csv", log_columns=LOG_COLUMNS, results=("metrics.json",))


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
        self.loop = EpochLoop(out_dir, FILES, seed=seed, epochs=recipe.epochs, device=device)
        self.device = self.loop.device
        self.recipe, self.seed = recipe, seed
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.out_dir = Path(out_dir)
        self.record = record or {}
        self.extra_metrics = extra_metrics or {}  # written into metrics.json with the results
        self.bf16 = self.device.type == "cuda"
        # channels_last: 1.5-2x faster convolutions on CPU (oneDNN) as on GPU (cuDNN), same numerics.
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, recipe)
        self.teacher = self._load_teacher()
        # On CUDA a per-step finiteness check would synchronise every step; check every few.
        self.check_every = 1 if self.device.type == "cpu" else 25

    @property
    def history(self) -> list[dict[str, float]]:
        return self.loop.history

    @property
    def checkpoint_path(self) -> Path:
        return self.loop.checkpoint_path

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

    # -- what the epoch loop checkpoints ----------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "seed": self.seed, "spec": self.model.to_spec()}

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "record": self.record}

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        require_keys(state, ("model", "optimizer"), path)
        load_weights(self.model, state["model"], path)
        self.optimizer.load_state_dict(state["optimizer"])

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

    def _check_finite(self, loss_sum: torch.Tensor, epoch: int, step: int, lr: float) -> None:
        self.loop.check_finite(loss_sum, "loss became NaN/Inf", epoch, step, lr,
                               "lower the recipe's 'lr' or add warm-up ('warmup_epochs')")

    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        row = {"epoch": epoch + 1, **self.train_epoch(epoch)}
        result = evaluate(self.model, self.eval_loader, self.device, self.bf16)
        row.update(test_loss=result.loss, test_top1=result.top1)
        return row

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training loader (the loop has seeded it from (seed, epoch))."""
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch)
        steps = len(self.train_loader)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        n = 0
        start = time.perf_counter()
        lr = self.recipe.lr
        for step, (x, y) in enumerate(self.loop.progress(self.train_loader, steps, epoch)):
            x, y = to_device(x, self.device), y.to(self.device, non_blocking=True)
            lr = self.loop.set_lr(self.recipe, self.optimizer, epoch, step, steps)
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
                self._check_finite(loss_sum, epoch, step, lr)
        self._check_finite(loss_sum, epoch, steps - 1, lr)
        seconds = time.perf_counter() - start
        return {
            "lr": lr,
            "train_loss": loss_sum.item() / max(n, 1),
            "train_top1": 100.0 * correct.item() / max(n, 1),
            "epoch_s": seconds,
            "images_per_s": n / seconds,
        }

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
        """Train to the recipe's last epoch (or stop after epoch `stop_after`, as an interruption would)."""
        if not self.loop.run(self, resume, stop_after):
            return self.loop.stopped()
        return self._write_metrics()

    def _write_metrics(self) -> dict[str, Any]:
        final = self.history[-1]
        metrics = {
            "top1": final["test_top1"],
            "test_loss": final["test_loss"],
            "best_top1": max(row["test_top1"] for row in self.history),
            "epochs": len(self.history),
            "train_images_per_s": sum(r["images_per_s"] for r in self.history) / len(self.history),
            "wall_time_s": self.loop.elapsed_s,
            "spec": self.model.to_spec(),
            "recipe": self.recipe.to_dict(),
            "record": self.record,
            "run": self.loop.provenance(),
            **self.extra_metrics,
        }
        if not math.isfinite(metrics["test_loss"]):
            raise TrainingDiverged(f"test loss is {metrics['test_loss']} after training; see {self.out_dir / 'train_log.csv'}")
        write_json_atomic(self.out_dir / "metrics.json", metrics)
        return metrics
