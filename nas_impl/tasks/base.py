"""The interface every task implements (see nas_impl/tasks/__init__.py)."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn

from nas_impl.errors import NasReproError


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled; nothing on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Task(abc.ABC):
    name: str
    headline: str  # the metric a run is judged by (metrics.json / eval.json key)
    higher_is_better: bool
    train_metric: str  # the training-set metric logged per epoch (train_<metric>)
    unit: str  # what a batch counts (images, tokens): the <unit>_per_s column and eval.json's count
    splits: tuple[str, ...]  # what `nasrepro evaluate --split` accepts
    monitor_split: str = "test"  # what training evaluates after every epoch (a language model: valid)
    # Recipe keys only this task's training applies, and their "off" values (an other task refuses them).
    own_recipe_keys: dict[str, Any] = {}

    def check_network(self, spec: dict[str, Any], origin: str, dataset: str) -> dict[str, Any]:
        """The spec, if its family is made for this task; else one error naming both."""
        from nas_impl.models.registry import family_class

        made_for = getattr(family_class(spec), "task", "image-classification")
        if made_for != self.name:
            raise NasReproError(f"{origin}: family '{spec['family']}' is a {made_for} network, but dataset "
                                f"'{dataset}' is a {self.name} task: pick a {self.name} family")
        return spec

    @abc.abstractmethod
    def dataset_shape(self, dataset: str, spec: dict[str, Any]) -> tuple[int, tuple[int, ...]]:
        """(classes, input size) of `dataset` as the spec's network sees it, without reading the data."""

    def window(self, natural_input: Sequence[int]) -> int | None:
        """Tokens per window for a sequence task (the network's natural input); None for images."""
        return None

    @abc.abstractmethod
    def adapt_spec(self, spec: dict[str, Any], num_classes: int,
                   input_size: Sequence[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The spec fitted to the dataset (head, stem or vocabulary), and what was changed."""

    @abc.abstractmethod
    def example_input(self, input_size: Sequence[int], batch_size: int, device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor:
        """A batch of zeros a network of this task takes (MACs, memory, fit checks)."""

    def forward(self, model: nn.Module, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """(outputs, state to carry into the next batch); stateless tasks carry None."""
        return model(x), None

    def training_forward(self, model: nn.Module, x: torch.Tensor, state: Any) -> tuple[Any, Any]:
        """Like `forward`, with whatever the task's regularisers read (a language model: `LMOutputs`)."""
        return self.forward(model, x, state)

    def check_recipe(self, recipe: Any, origin: str) -> None:
        """One error naming a recipe key set for another task's training."""
        from nas_impl.tasks import TASKS

        for task in TASKS.values():
            if task.name == self.name:
                continue
            for key, off in task.own_recipe_keys.items():
                if getattr(recipe, key) != off:
                    article = "an" if self.name[0] in "aeiou" else "a"
                    raise NasReproError(f"{origin}: recipe key '{key}' applies to {task.name} only, but this is "
                                        f"{article} {self.name} run: remove it")

    def regularisation(self, outputs: Any, recipe: Any) -> torch.Tensor | float:
        """Terms the training objective adds to the loss (not logged as loss): none by default."""
        return 0.0

    @abc.abstractmethod
    def loss(self, outputs: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        ...

    @abc.abstractmethod
    def count_correct(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """What the training epoch accumulates besides the loss (a count; 0 when the task has none)."""

    @abc.abstractmethod
    def train_value(self, loss_mean: float, correct: int, n: int) -> float:
        """The logged training metric from the epoch's sums."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, loader: Iterable, device: torch.device, bf16: bool) -> dict[str, float]:
        """{'loss', the headline metric (and any others), 'n'} over the loader."""

    def log_columns(self) -> list[str]:
        split = self.monitor_split
        return ["train_loss", f"train_{self.train_metric}", f"{split}_loss", f"{split}_{self.headline}"]

    def best(self, values: Iterable[float]) -> float:
        return max(values) if self.higher_is_better else min(values)
