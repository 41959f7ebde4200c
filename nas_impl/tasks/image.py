"""Image classification: cross-entropy (with label smoothing in training), top-1 and top-5."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn

from nas_impl.errors import NasReproError
from nas_impl.tasks.base import Task, autocast
from nas_impl.training.losses import classification_loss


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images go channels_last (a no-op for the TensorLoader's batches, which already are)."""
    if x.ndim == 4:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


def count_top1(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How many argmax predictions equal the label (a device tensor: no synchronisation)."""
    return (logits.detach().argmax(1) == target).sum()


def top1_percent(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Top-1 accuracy of one batch in percent (the one place every loop counts it)."""
    return 100.0 * count_top1(logits, target).item() / max(target.numel(), 1)


class ImageClassification(Task):
    name = "image-classification"
    headline = "top1"
    higher_is_better = True
    train_metric = "top1"
    unit = "images"
    splits = ("test", "train")

    def dataset_shape(self, dataset: str, spec: dict[str, Any]) -> tuple[int, tuple[int, ...]]:
        from nas_impl.data import dataset_info

        info = dataset_info(dataset)
        return info.num_classes, info.input_size

    def adapt_spec(self, spec: dict[str, Any], num_classes: int,
                   input_size: Sequence[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        from nas_impl.runs import adapt_spec

        return adapt_spec(spec, num_classes, input_size[0])

    def example_input(self, input_size: Sequence[int], batch_size: int, device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch_size, *input_size, device=device, dtype=dtype)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return classification_loss(outputs, target, label_smoothing)

    def count_correct(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return count_top1(outputs, target)

    def train_value(self, loss_mean: float, correct: int, n: int) -> float:
        return 100.0 * correct / max(n, 1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: Iterable, device: torch.device, bf16: bool) -> dict[str, float]:
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
        return {"loss": loss_sum.item() / n, "top1": top1, "top5": top5, "n": n}
