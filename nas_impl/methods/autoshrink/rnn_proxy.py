"""The RNN search's proxy training of one shrink step's candidates (lordzth666/AutoShrink
`searching/rnn/model.py` `Estimator`, `searching/rnn/train.py` argument defaults).

Each candidate is the `dag-rnn-lm` cell at the search's small size (emsize = nhid = 100, every
dropout 0) with its decoder tied to the embedding. Its recurrent weights start uniform in ±0.04;
the embedding starts from the search's one initial embedding (`initial_embedding`: uniform in
±0.5, overwritten by pretrained vectors for the words that have one), copied into every candidate,
as the official `build_weight` copies its `pretrain` tensor; the decoder bias at 0.

Training (`train_lm_candidates`), per candidate as the official estimator: `epochs` passes (10)
over the proxy's training tokens in 128 columns, carrying the recurrent state from window to
window; a window is 35 tokens, or 17 with probability 0.05 (int(35 / 2), without AWD-LSTM's
N(., 5) jitter), and its step's lr is lr x length / 35; plain SGD at lr 20, no weight decay, the
gradient norm clipped at 0.25. The lr is divided by 10 after the epochs epochs - 4 and epochs - 2
(0-based: after the 7th and 9th of 10). After every epoch the validation loss, computed as the
official `evaluate` does (windows of 35 over 256 columns, each window's mean loss times its
length, summed and divided by the column length: (T - 1) / T of the per-token mean). Training
stops after 4 epochs without a better validation loss, or when the validation loss exceeds 3x
the moving train loss (momentum 0.9 over the steps' losses); here also when the validation loss
is NaN (officially such a run goes on to its 4th failure without a better loss: the same result).
The candidate's perplexity is exp(best validation loss), NaN when that loss is 30 or more.

The candidates of a step share one stream: the window lengths are drawn once per step and every
active candidate trains on the same windows, with one backward of the sum of their losses (their
parameters are disjoint: each gets its own gradient, clipped by its own norm). The official code
trains them one after another, each drawing its own window lengths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.errors import DataError
from nas_impl.tasks.language import detach_state


@dataclass(frozen=True)
class LMProxySettings:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 256
    bptt: int = 35
    half_window_prob: float = 0.05  # a window of int(bptt / 2) tokens instead of bptt
    lr: float = 20.0
    grad_clip: float = 0.25
    weight_decay: float = 0.0
    patience: int = 4  # epochs without a better validation loss
    nan_loss: float = 30.0  # a best validation loss at least this is no perplexity (NaN)


@dataclass
class LMCandidateRun:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    best_valid_loss: float = math.inf
    epochs: int = 0
    stopped: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    _failures: int = 0

    @property
    def active(self) -> bool:
        return self.stopped is None

    def perplexity(self, nan_loss: float) -> float:
        return math.exp(self.best_valid_loss) if self.best_valid_loss < nan_loss else math.nan


def initial_embedding(vocab: Sequence[str], size: int, generator: torch.Generator,
                      vectors: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The official `build_emb`: uniform in ±0.5, then the pretrained vector of every word that has one."""
    weight = torch.empty(len(vocab), size).uniform_(-0.5, 0.5, generator=generator)
    for i, word in enumerate(vocab):
        if vectors is not None and word in vectors:
            weight[i] = vectors[word]
    return weight


def read_word_vectors(path: str | Path, size: int) -> dict[str, torch.Tensor]:
    """GloVe's text format (a word, then `size` numbers, per line): the official `w2v.pkl` is
    glove.6B.100d restricted to PTB's training words (`searching/rnn/preprocess.py`)."""
    vectors: dict[str, torch.Tensor] = {}
    try:
        with open(path, encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                word, *values = line.rstrip("\n").split(" ")
                if len(values) != size:
                    raise DataError(f"{path} line {number}: {len(values)} numbers for {word!r}, the search's "
                                    f"embedding has {size}: give the glove.6B.{size}d.txt file")
                vectors[word] = torch.tensor([float(v) for v in values])
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as GloVe text vectors ({err}); fix the search recipe's "
                        "'embedding_vectors' or leave it out (uniform initial embedding)") from None
    return vectors


def _window_lengths(rows: int, settings: LMProxySettings, generator: torch.Generator) -> list[int]:
    """The drawn window lengths of a training pass (the last window is cut at the end of the stream;
    its lr scale still uses the drawn length, as officially)."""
    lengths, i = [], 0
    while i < rows - 2:
        drawn = settings.bptt if torch.rand((), generator=generator).item() < 1 - settings.half_window_prob \
            else int(settings.bptt / 2)
        lengths.append(drawn)
        i += drawn
    return lengths


def _lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    logits, state = model(x.t().contiguous(), state)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.t().reshape(-1)), state


@torch.no_grad()
def official_valid_loss(model: nn.Module, columns: torch.Tensor, bptt: int) -> float:
    """The official `evaluate`: sum of window mean loss x window length, over the column length."""
    from nas_impl.data.ptb import get_batch

    model.eval()
    total, state = 0.0, None
    for i in range(0, len(columns) - 1, bptt):
        x, y = get_batch(columns, i, bptt)
        loss, state = _lm_loss(model, x, y, state)
        total += float(loss) * len(x)
    return total / len(columns)


def train_lm_candidates(models: Sequence[nn.Module], train_tokens: torch.Tensor, valid_tokens: torch.Tensor,
                        settings: LMProxySettings, seed: int) -> list[LMCandidateRun]:
    """Train every model from its current weights with the official estimator's regime (see the
    module docstring); the models share one stream of windows."""
    from nas_impl.data.ptb import batchify, get_batch

    device = next(models[0].parameters()).device
    train, valid = batchify(train_tokens, settings.batch_size, device), batchify(valid_tokens,
                                                                                settings.eval_batch_size, device)
    runs = [LMCandidateRun(m, torch.optim.SGD(m.parameters(), lr=settings.lr, weight_decay=settings.weight_decay))
            for m in models]
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(settings.epochs):
        active = [r for r in runs if r.active]
        if not active:
            break
        states: dict[int, Any] = {id(r): None for r in active}
        moving = {id(r): 0.0 for r in active}
        i = 0
        for drawn in _window_lengths(len(train), settings, generator):
            x, y = get_batch(train, i, drawn)
            i += drawn
            losses = []
            for r in active:
                r.model.train()
                loss, state = _lm_loss(r.model, x, y, states[id(r)])
                states[id(r)] = detach_state(state)
                losses.append(loss)
            for r in active:
                r.optimizer.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            for r, loss in zip(active, losses):
                nn.utils.clip_grad_norm_(r.model.parameters(), settings.grad_clip)
                group = r.optimizer.param_groups[0]
                base_lr, group["lr"] = group["lr"], group["lr"] * drawn / settings.bptt
                r.optimizer.step()
                group["lr"] = base_lr
                value = loss.item()
                moving[id(r)] = value if moving[id(r)] <= 0 else 0.1 * value + 0.9 * moving[id(r)]
        for r in active:
            _end_epoch(r, epoch, moving[id(r)], official_valid_loss(r.model, valid, settings.bptt), settings)
    return runs


def _end_epoch(run: LMCandidateRun, epoch: int, train_loss: float, valid_loss: float,
               settings: LMProxySettings) -> None:
    run.epochs = epoch + 1
    run.history.append({"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid_loss,
                        "lr": run.optimizer.param_groups[0]["lr"]})
    if epoch in (settings.epochs - 4, settings.epochs - 2):
        run.optimizer.param_groups[0]["lr"] /= 10
    if valid_loss < run.best_valid_loss:
        run.best_valid_loss, run._failures = valid_loss, 0
    else:
        run._failures += 1
    if run._failures >= settings.patience:
        run.stopped = f"{settings.patience} epochs without a better validation loss"
    elif valid_loss > 3 * train_loss:
        run.stopped = "validation loss above 3x the moving train loss"
    elif math.isnan(valid_loss):
        run.stopped = "validation loss is NaN"


def describe(run: LMCandidateRun, settings: LMProxySettings) -> dict[str, Any]:
    loss = run.best_valid_loss
    return {"valid_ppl": run.perplexity(settings.nan_loss), "valid_loss": loss if math.isfinite(loss) else None,
            "epochs": run.epochs, "stopped": run.stopped}
