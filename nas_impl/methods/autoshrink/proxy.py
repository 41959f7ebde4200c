"""The CNN search's proxy task and the training of one shrink step's candidates
(lordzth666/AutoShrink `searching/cnn/make_cifar10_proxy.py`, `proxy_estimator.py`,
`solver/cifar10_proxy.solver`).

Proxy data: `per_class_train` images a class from the training split (official: 500, drawn with
replacement and unseeded; here class-balanced, seeded, without repeats), and a validation set of
`per_class_valid` a class (official: 100) that is either held out of the rest of the training
split (`valid_from: train`, the default: the search never sees the test split) or, as the
official code does, drawn from the **test** split with replacement (`valid_from: test`).
Images are normalised only, as the official pipeline does (no augmentation).

Training (`train_candidates`): each candidate from scratch, `epochs` epochs (official 20) of
ceil(n / batch) steps over an endlessly reshuffled stream (TF's shuffle_and_repeat), Adam
(lr 4e-3, constant; TF's L2 regulariser 1e-5 on the weights = coupled weight decay 1e-5 on conv
and dense kernels). After every epoch the validation accuracy; the result is the best one. The
official early stops, per candidate: an epoch ends early once its moving train accuracy
(momentum 0.99) passes 0.98; training stops after 5 epochs without a better validation accuracy,
after the 4th epoch if validation accuracy is below 0.2, and when the validation loss exceeds
3x the moving train loss.

The candidates of a step are independent networks trained in lockstep: one stream of batches,
every active candidate's forward on the same batch, one backward of the sum of their losses
(disjoint parameters: each gets exactly its own gradient) and one optimizer step each. The
official code trains them one after another, each on its own shuffled stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.training.optim import parameter_groups


@dataclass(frozen=True)
class ProxySettings:
    per_class_train: int = 500
    per_class_valid: int = 100
    valid_from: str = "train"  # or "test": the official 100 a class of the test split, with replacement
    split_seed: int = 0
    epochs: int = 20
    batch_size: int = 128
    valid_batch_size: int = 100
    lr: float = 4e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-5
    no_decay_bn_bias: bool = True  # TF's L2 regulariser is on conv and dense kernels only


def proxy_indices(train_y: torch.Tensor, test_y: torch.Tensor,
                  settings: ProxySettings) -> tuple[torch.Tensor, str, torch.Tensor]:
    """(training indices, the validation split's name, validation indices into that split)."""
    from nas_impl import data

    classes = int(train_y.max()) + 1
    train_idx = data.subset(train_y, settings.per_class_train * classes, seed=settings.split_seed)
    if settings.valid_from == "train":
        rest = torch.ones(len(train_y), dtype=torch.bool)
        rest[train_idx] = False
        pool = torch.nonzero(rest).flatten()
        valid = pool[data.subset(train_y[pool], settings.per_class_valid * classes, seed=settings.split_seed + 1)]
        return train_idx, "train", valid
    if settings.valid_from != "test":
        raise ValueError(f"valid_from must be 'train' or 'test', got {settings.valid_from!r}")
    rng = random.Random(settings.split_seed)
    picks = []
    for c in range(classes):
        members = torch.nonzero(test_y == c).flatten().tolist()
        picks += rng.choices(members, k=settings.per_class_valid)  # with replacement, as the official proxy
    return train_idx, "test", torch.tensor(picks, dtype=torch.int64)


@dataclass
class CandidateRun:
    """One candidate's training: its best validation accuracy (a fraction) and how it ended."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    best_valid_acc: float = 0.0
    epochs: int = 0
    stopped: str | None = None  # why training ended before the last epoch
    history: list[dict[str, float]] = field(default_factory=list)
    _failures: int = 0

    @property
    def active(self) -> bool:
        return self.stopped is None


def batches_forever(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator:
    """Full batches of an endlessly reshuffled stream (an epoch's remainder starts the next pass)."""
    order = torch.empty(0, dtype=torch.int64)
    while True:
        while len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(y), generator=generator)])
        take, order = order[:batch_size], order[batch_size:]
        yield x[take], y[take]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(accuracy as a fraction, mean cross-entropy)."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        out = model(x[i:i + batch_size])
        correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
        loss += float(F.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
    return correct / len(y), loss / len(y)


def train_candidates(models: Sequence[nn.Module], train: tuple[torch.Tensor, torch.Tensor],
                     valid: tuple[torch.Tensor, torch.Tensor], settings: ProxySettings, seed: int) -> list[CandidateRun]:
    """Train every model from its current (fresh) weights with the official proxy recipe and early
    stops; the models share one stream of batches (see the module docstring)."""
    runs = [CandidateRun(m, torch.optim.Adam(parameter_groups(m, settings.weight_decay, settings.no_decay_bn_bias),
                                             lr=settings.lr, betas=settings.betas)) for m in models]
    x, y = train
    generator = torch.Generator().manual_seed(seed)
    stream = batches_forever(x, y, settings.batch_size, generator)
    steps = math.ceil(len(y) / settings.batch_size)
    for epoch in range(settings.epochs):
        if not any(r.active for r in runs):
            break
        moving = {id(r): {"acc": 0.0, "loss": 0.0} for r in runs}
        in_epoch = [r for r in runs if r.active]
        for _ in range(steps):
            if not in_epoch:
                break
            bx, by = next(stream)
            losses, accs = [], []
            for r in in_epoch:
                r.model.train()
                out = r.model(bx)
                losses.append(F.cross_entropy(out, by))
                accs.append(float((out.argmax(1) == by).float().mean()))
            for r in in_epoch:
                r.optimizer.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            for r, loss, acc in zip(in_epoch, losses, accs):
                r.optimizer.step()
                m, value = moving[id(r)], loss.item()
                m["acc"] = acc if m["acc"] == 0 else 0.99 * m["acc"] + 0.01 * acc
                m["loss"] = value if m["loss"] == 0 else 0.99 * m["loss"] + 0.01 * value
            in_epoch = [r for r in in_epoch if moving[id(r)]["acc"] <= 0.98]
        for r in runs:
            if r.active:
                _end_epoch(r, epoch, moving[id(r)], valid, settings)
    return runs


def _end_epoch(run: CandidateRun, epoch: int, moving: dict[str, float], valid: tuple[torch.Tensor, torch.Tensor],
               settings: ProxySettings) -> None:
    acc, loss = evaluate(run.model, *valid, settings.valid_batch_size)
    run.epochs = epoch + 1
    run.history.append({"epoch": epoch + 1, "train_acc": moving["acc"], "train_loss": moving["loss"],
                        "valid_acc": acc, "valid_loss": loss})
    if acc > run.best_valid_acc:
        run.best_valid_acc, run._failures = acc, 0
    else:
        run._failures += 1
    if run._failures == 5:
        run.stopped = "5 epochs without a better validation accuracy"
    elif epoch == 3 and acc < 0.2:
        run.stopped = "validation accuracy below 0.2 after 4 epochs"
    elif loss > 3 * moving["loss"]:
        run.stopped = "validation loss above 3x the moving train loss"


def describe(run: CandidateRun) -> dict[str, Any]:
    return {"valid_acc": run.best_valid_acc, "epochs": run.epochs, "stopped": run.stopped}
