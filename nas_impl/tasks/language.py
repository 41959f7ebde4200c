"""Language modelling: next-token cross-entropy and perplexity over truncated-BPTT windows.

A token stream is cut into `batch_size` contiguous columns (`data.batchify`) and read in windows
of `bptt` tokens; the model's recurrent state is carried from one window to the next (detached,
so gradients stop at the window), as in Zaremba et al. and the AWD-LSTM / DARTS / ENAS language
models. Perplexity = exp(mean negative log-likelihood per target token).

AWD-LSTM's training regime (Merity et al., 2018), which the DARTS and AutoShrink language models
train with, is recipe keys: `variable_bptt` (each training window's length is drawn around the
model's `seq_len`, and the step's learning rate scaled by length / seq_len), `ar` and `tar`
(activation and temporal activation regularisation on the recurrent output, computed here from
the `LMOutputs` a model returns with `return_hidden=True`), `asgd_nonmono` and `keep_best` (the
trainer's switch to averaged SGD and best-validation weights). Training monitors the validation
split; the test split is `nasrepro evaluate`'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from nas_impl.errors import NasReproError
from nas_impl.tasks.base import Task, autocast


def perplexity(loss: float) -> float:
    """exp(mean negative log-likelihood); inf where that overflows (a diverging run)."""
    return math.exp(loss) if loss < 700 else math.inf


def detach_state(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


class LMOutputs(NamedTuple):
    """A language model's training outputs: logits (B, T, V) and its recurrent output (B, T, H)
    before and after the output dropout, which the activation regularisers read."""

    logits: torch.Tensor
    hidden: torch.Tensor
    dropped: torch.Tensor


def window_length(bptt: int, generator: torch.Generator | None = None) -> int:
    """AWD-LSTM's variable window: the base length is bptt (probability 0.95) or bptt / 2, the
    length is drawn from N(base, 5), truncated to an integer, at least 5 and at most bptt + 20."""
    base = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2.0
    length = int(base + 5.0 * torch.randn((), generator=generator).item())
    return min(max(5, length), bptt + 20)


class TokenWindows:
    """Batch-first (B, bptt) input windows and their next-token targets over a batchified stream.

    The order is fixed (state flows from window to window). With `variable=True` the lengths of a
    pass are drawn by `window_length` from the global generator when the pass begins (`set_epoch`,
    which the trainer calls after the epoch loop has seeded it from (seed, epoch)): a resumed epoch
    draws the same windows, and `len` is the pass's exact number of steps, which a per-step
    schedule needs. As in AWD-LSTM, a pass stops before a last window of a single token.
    `lr_factor` is a window's length / bptt, the factor AWD-LSTM scales that step's lr by."""

    def __init__(self, tokens: torch.Tensor, batch_size: int, bptt: int, device: torch.device | str = "cpu",
                 variable: bool = False) -> None:
        from nas_impl.data.ptb import batchify

        self.columns = batchify(tokens, batch_size, device)  # (T, B)
        self.bptt, self.variable = bptt, variable
        self._lengths: list[int] | None = None

    def set_epoch(self, epoch: int) -> None:
        if self.variable:
            self._lengths = self._draw_lengths()

    def _draw_lengths(self) -> list[int]:
        lengths, i, last = [], 0, len(self.columns) - 2  # stop with fewer than 2 tokens left (official `T - 1 - 1`)
        while i < last:
            lengths.append(min(window_length(self.bptt), len(self.columns) - 1 - i))
            i += lengths[-1]
        return lengths

    def _pass_lengths(self) -> list[int]:
        if not self.variable:
            return [min(self.bptt, len(self.columns) - 1 - i) for i in range(0, len(self.columns) - 1, self.bptt)]
        if self._lengths is None:
            self._lengths = self._draw_lengths()
        return self._lengths

    def __len__(self) -> int:
        return len(self._pass_lengths())

    def lr_factor(self, x: torch.Tensor) -> float:
        return x.shape[1] / self.bptt if self.variable else 1.0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from nas_impl.data.ptb import get_batch

        lengths, i = self._pass_lengths(), 0
        self._lengths = None  # the next pass draws its own (unless set_epoch draws them first)
        for length in lengths:
            x, y = get_batch(self.columns, i, length)
            yield x.t(), y.t()
            i += length


class LanguageModelling(Task):
    name = "language-modelling"
    headline = "ppl"
    higher_is_better = False
    train_metric = "ppl"
    unit = "tokens"
    splits = ("test", "valid", "train")
    monitor_split = "valid"
    own_recipe_keys = {"variable_bptt": False, "asgd_nonmono": None, "ar": 0.0, "tar": 0.0}

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
        return model(x, detach_state(state))

    def training_forward(self, model: nn.Module, x: torch.Tensor, state: Any) -> tuple[LMOutputs, Any]:
        return model(x, detach_state(state), return_hidden=True)

    def loss(self, outputs: LMOutputs | torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        logits = outputs.logits if isinstance(outputs, LMOutputs) else outputs
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))

    def regularisation(self, outputs: LMOutputs, recipe: Any) -> torch.Tensor | float:
        extra: torch.Tensor | float = 0.0
        if recipe.ar:
            extra = extra + recipe.ar * outputs.dropped.float().pow(2).mean()
        if recipe.tar and outputs.hidden.shape[1] > 1:
            extra = extra + recipe.tar * (outputs.hidden[:, 1:] - outputs.hidden[:, :-1]).float().pow(2).mean()
        return extra

    def count_correct(self, outputs: Any, target: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=torch.int64, device=target.device)

    def train_value(self, loss_mean: float, correct: int, n: int) -> float:
        return perplexity(loss_mean)

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
        return {"loss": loss, "ppl": perplexity(loss), "n": n}
