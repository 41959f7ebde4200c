"""Language modelling: next-token cross-entropy and perplexity over truncated-BPTT windows.

A token stream is cut into `batch_size` contiguous columns (`data.batchify`) and read in windows
of `bptt` tokens; the model's recurrent state is carried from one window to the next (detached,
so gradients stop at the window), as in Zaremba et al. and the AWD-LSTM / DARTS / ENAS language
models. Perplexity = exp(mean negative log-likelihood per target token).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn

from nas_impl.errors import NasReproError
from nas_impl.tasks.base import Task, autocast


def detach_state(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


class TokenWindows:
    """Batch-first (B, bptt) input windows and their next-token targets over a batchified stream.

    The order is fixed (state flows from window to window), so `set_epoch` changes nothing; it is
    there for the epoch loop, like the image loaders'."""

    def __init__(self, tokens: torch.Tensor, batch_size: int, bptt: int, device: torch.device | str = "cpu") -> None:
        from nas_impl.data.ptb import batchify

        self.columns = batchify(tokens, batch_size, device)  # (T, B)
        self.bptt = bptt

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return math.ceil((len(self.columns) - 1) / self.bptt)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from nas_impl.data.ptb import get_batch

        for i in range(0, len(self.columns) - 1, self.bptt):
            x, y = get_batch(self.columns, i, self.bptt)
            yield x.t(), y.t()


class LanguageModelling(Task):
    name = "language-modelling"
    headline = "ppl"
    higher_is_better = False
    train_metric = "ppl"
    unit = "tokens"
    splits = ("test", "valid", "train")

    def dataset_shape(self, dataset: str, spec: dict[str, Any]) -> tuple[int, tuple[int, ...]]:
        from nas_impl.data.registry import TEXT_VOCABULARY
        from nas_impl.models import natural_input

        return TEXT_VOCABULARY[dataset], natural_input(spec)

    def window(self, natural_input: Sequence[int]) -> int | None:
        return natural_input[0]

    def adapt_spec(self, spec: dict[str, Any], num_classes: int,
                   input_size: Sequence[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        if spec.get("vocab_size") == num_classes:
            return spec, {}
        return {**spec, "vocab_size": num_classes}, {"vocab_size": {"spec": spec.get("vocab_size"), "dataset": num_classes}}

    def example_input(self, input_size: Sequence[int], batch_size: int, device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch_size, *input_size, device=device, dtype=torch.long)

    def forward(self, model: nn.Module, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        logits, state = model(x, detach_state(state))
        return logits, state

    def loss(self, outputs: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]).float(), target.reshape(-1))

    def count_correct(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=torch.int64, device=outputs.device)

    def train_value(self, loss_mean: float, correct: int, n: int) -> float:
        return math.exp(loss_mean)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: Iterable, device: torch.device, bf16: bool) -> dict[str, float]:
        model.eval()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        n, state = 0, None
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with autocast(device, bf16):
                logits, state = model(x, state)
            loss_sum += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                                    reduction="sum")
            n += y.numel()
        if n == 0:
            raise NasReproError("evaluation yielded no token windows: the split is shorter than one batch column")
        loss = loss_sum.item() / n
        return {"loss": loss, "ppl": math.exp(loss), "n": n}
