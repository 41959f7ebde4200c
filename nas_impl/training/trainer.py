"""The one trainer every retraining uses, for any task (image classification, language modelling).

One epoch = reseed from (seed, epoch), train over the loader with a per-step learning rate,
evaluate, append a row to the history, write `train_log.csv` and `checkpoint.pt` atomically.
`fit(resume=True)` continues from the last completed epoch and ends bit-identical (on CPU) to
an uninterrupted run, because everything random is a function of (seed, epoch). The task
(`nas_impl.tasks`) supplies the loss and its regularisers, the metrics, the split evaluated after
every epoch and the log columns.

Three recipe keys change which weights are evaluated (any task may use them): `asgd_nonmono`
(AWD-LSTM) switches SGD to averaged SGD once the monitored loss has not beaten the best of all
but the last `asgd_nonmono` epochs, after which every evaluation uses the average; `ema_decay`
evaluates an exponential moving average of the weights, updated after every step (TensorFlow's
rule, `nas_impl.training.ema`); `keep_best` evaluates with the weights of the best epoch. The checkpoint's `eval_model` holds those weights,
which `nasrepro evaluate` reads; `model` holds the training weights a resumed run continues from.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_impl.errors import NasReproError, TrainingDiverged
from nas_impl.io import write_json_atomic
from nas_impl.tasks import Task, task_of
from nas_impl.tasks.base import autocast
from nas_impl.tasks.image import to_device
from nas_impl.training.checkpoint import load_weights, model_from_checkpoint, require_keys
from nas_impl.training.distributed import World
from nas_impl.training.ema import WeightEMA
from nas_impl.training.epoch_loop import EpochLoop, RunFiles
from nas_impl.training.losses import distillation_loss
from nas_impl.training.optim import averaged_weights, build_averaged_optimizer, build_optimizer
from nas_impl.training.recipe import Recipe


def run_files(task: Task) -> RunFiles:
    """train_log.csv's columns for the task; metrics.json is what a finished run leaves (removed when
    a run starts, so a run that dies never leaves an old result beside its own checkpoint)."""
    columns = ["epoch", "lr", *task.log_columns(), "averaging", "epoch_s", f"{task.unit}_per_s"]
    return RunFiles(log="train_log.csv", log_columns=columns, results=("metrics.json",))


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
        task: Task | None = None,
        world: World | None = None,
        compile_step: bool = False,
    ) -> None:
        self.task = task or task_of(model)
        self.task.check_recipe(recipe, "recipe")
        self.world = world or World()
        self.world.check_batch(recipe.batch_size)
        self.loop = EpochLoop(out_dir, run_files(self.task), seed=seed, epochs=recipe.epochs, device=device,
                              writes=self.world.is_main)
        self.device = self.loop.device
        self.recipe, self.seed = recipe, seed
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.out_dir = Path(out_dir)
        self.record = record or {}
        self.extra_metrics = extra_metrics or {}  # written into metrics.json with the results
        self.bf16 = self.device.type == "cuda"
        # channels_last: 1.5-2x faster convolutions on CPU (oneDNN) as on GPU (cuDNN), same numerics.
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.step_model = self.world.wrap(self.model, self.device)  # what a training step calls
        if compile_step:  # evaluation keeps the eager model: it runs once an epoch
            self.step_model = torch.compile(self.step_model)
        self.optimizer = build_optimizer(self.model, recipe)
        self.averaging = False  # switched to averaged SGD (`asgd_nonmono`)
        self.ema = WeightEMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        self.best: tuple[int, dict[str, torch.Tensor]] | None = None  # (epoch, evaluated weights) for `keep_best`
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
        if self.task.name != "image-classification":
            raise NasReproError(f"the recipe distills, but knowledge distillation is implemented for image "
                                f"classification only (this network's task: {self.task.name}): remove 'distill'")
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
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "record": self.record,
                 "averaging": self.averaging}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.best is not None:
            state["best_epoch"], state["eval_model"] = self.best
        elif self.averaging or self.ema is not None:
            with self.evaluation_weights():
                state["eval_model"] = copy.deepcopy(self.model.state_dict())
        return state

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        require_keys(state, ("model", "optimizer"), path)
        load_weights(self.model, state["model"], path)
        self.averaging = bool(state.get("averaging", False))
        if self.averaging:
            self.optimizer = build_averaged_optimizer(self.model, self.recipe)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            require_keys(state, ("ema",), path)
            self.ema.load_state_dict(state["ema"])
        if "best_epoch" in state:
            self.best = (state["best_epoch"], state["eval_model"])

    @contextlib.contextmanager
    def evaluation_weights(self) -> Iterator[None]:
        """The model holds the weights an evaluation uses (the moving average with `ema_decay`; after
        the switch to averaged SGD, its running average)."""
        if self.ema is not None:
            average = self.ema.weights()
        else:
            average = averaged_weights(self.optimizer) if self.averaging else {}
        saved = {p: p.detach().clone() for p in average}
        with torch.no_grad():
            for p, value in average.items():
                p.copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in saved.items():
                    p.copy_(value)

    # -- training -----------------------------------------------------------------------------
    def _loss(self, x: torch.Tensor, y: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        """(loss, objective = loss + the task's regularisers, outputs, state carried to the next
        batch: a language model's recurrent state)."""
        with autocast(self.device, self.bf16):
            outputs, state = self.task.training_forward(self.step_model, x, state)
            if self.teacher is None:
                loss = self.task.loss(outputs, y, self.recipe.label_smoothing)
                return loss, loss + self.task.regularisation(outputs, self.recipe), outputs, state
            with torch.no_grad():
                teacher_logits = self.teacher(x)
        d = self.recipe.distill
        loss = distillation_loss(outputs, teacher_logits, y, d.temperature, d.alpha, self.recipe.label_smoothing)
        return loss, loss, outputs, state

    def _check_finite(self, loss_sum: torch.Tensor, epoch: int, step: int, lr: float) -> None:
        self.loop.check_finite(loss_sum, "loss became NaN/Inf", epoch, step, lr,
                               "lower the recipe's 'lr' or add warm-up ('warmup_epochs')")

    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        row = {"epoch": epoch + 1, **self.train_epoch(epoch), "averaging": int(self.averaging)}
        with self.evaluation_weights():
            result = self.task.evaluate(self.model, self.eval_loader, self.device, self.bf16)
            split, headline = self.task.monitor_split, self.task.headline
            row.update({f"{split}_loss": result["loss"], f"{split}_{headline}": result[headline]})
            if self.recipe.keep_best and self._is_best(result[headline]):
                self.best = (epoch + 1, copy.deepcopy(self.model.state_dict()))
        if self.recipe.asgd_nonmono and not self.averaging and self._stalled(result["loss"]):
            self.averaging = True
            self.optimizer = build_averaged_optimizer(self.model, self.recipe)
        return row

    def _is_best(self, value: float) -> bool:
        earlier = [row[f"{self.task.monitor_split}_{self.task.headline}"] for row in self.history]
        return not earlier or self.task.best([value, *earlier]) == value and value not in earlier

    def _stalled(self, loss: float) -> bool:
        """AWD-LSTM's non-monotone trigger: this epoch's loss is worse than the best of the SGD
        epochs before the last `asgd_nonmono` ones."""
        earlier = [row[f"{self.task.monitor_split}_loss"] for row in self.history if not row["averaging"]]
        n = self.recipe.asgd_nonmono
        return len(earlier) > n and loss > min(earlier[:-n])

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
        lr, state = self.recipe.lr, None
        lr_factor = getattr(self.train_loader, "lr_factor", None)  # a language model's variable windows
        for step, (x, y) in enumerate(self.loop.progress(self.train_loader, steps, epoch)):
            x, y = to_device(x, self.device), y.to(self.device, non_blocking=True)
            x, y = self.world.shard(x), self.world.shard(y)
            lr = self.loop.set_lr(self.recipe, self.optimizer, epoch, step, steps)
            if lr_factor is not None and (factor := lr_factor(x)) != 1.0:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * factor
            loss, objective, outputs, state = self._loss(x, y, state)
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if self.recipe.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update()
            loss_sum += loss.detach() * y.numel()
            correct += self.task.count_correct(outputs, y)
            n += y.numel()
            if (step + 1) % self.check_every == 0:
                self._check_finite(loss_sum, epoch, step, lr)
        self._check_finite(loss_sum, epoch, steps - 1, lr)
        seen = torch.tensor(n, device=self.device, dtype=torch.int64)
        self.world.sum(loss_sum, correct, seen)  # the log's figures are the global batch's
        n = int(seen.item())
        seconds = time.perf_counter() - start
        loss_mean = loss_sum.item() / max(n, 1)
        return {
            "lr": lr,
            "train_loss": loss_mean,
            f"train_{self.task.train_metric}": self.task.train_value(loss_mean, correct.item(), n),
            "epoch_s": seconds,
            f"{self.task.unit}_per_s": n / seconds,
        }

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
        """Train to the recipe's last epoch (or stop after epoch `stop_after`, as an interruption would)."""
        if not self.loop.run(self, resume, stop_after):
            return self.loop.stopped()
        return self._write_metrics()

    def _write_metrics(self) -> dict[str, Any]:
        headline, speed, split = self.task.headline, f"{self.task.unit}_per_s", self.task.monitor_split
        selected = self.best[0] if self.best is not None else len(self.history)
        final = self.history[selected - 1]
        metrics = {
            headline: final[f"{split}_{headline}"],
            f"{split}_loss": final[f"{split}_loss"],
            f"best_{headline}": self.task.best(row[f"{split}_{headline}"] for row in self.history),
            "split": split,
            "selected_epoch": selected,
            "averaged_from_epoch": next((r["epoch"] for r in self.history if r["averaging"]), None),
            "epochs": len(self.history),
            f"train_{speed}": sum(r[speed] for r in self.history) / len(self.history),
            "wall_time_s": self.loop.elapsed_s,
            "spec": self.model.to_spec(),
            "recipe": self.recipe.to_dict(),
            "record": self.record,
            "run": self.loop.provenance(),
            **self.extra_metrics,
        }
        if self.world.active:
            metrics["world_size"] = self.world.size
        if not math.isfinite(metrics[f"{split}_loss"]):
            raise TrainingDiverged(f"{split} loss is {metrics[f'{split}_loss']} after training; "
                                   f"see {self.out_dir / 'train_log.csv'}")
        if self.world.is_main:
            write_json_atomic(self.out_dir / "metrics.json", metrics)
        return metrics
