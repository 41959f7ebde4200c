"""MemNAS's structure-correlation controller: an LSTM that reads a candidate network cell by cell
and regresses its reward, so that only the candidates it ranks highest are trained
(../shared/reference/memnas.md §3.5). Read from MemNAS/MemNAS at f9a9c65 (git history; the
repository deleted its code at HEAD): `utils/controller.py` (the model and its training) and
`utils/general.py` (`gen_trainingData_score`, `padding_training_data`, `score`).

What the official code does, and this module with it:

- Input: a network is the sequence of its cells' 61-number vectors (`encode_cells` of
  nas_impl/models/memnas_cells.py), block 1's cells first, then block 2's, ... (5 blocks). Every
  block is padded at its end with all-zero vectors up to one common number of cells per block:
  the longest candidate's plus `pad_extra` (`padding_training_data`; controller.py passes 2).
  `sequence_length` gives that number, `controller_input` builds the [N, 5 x cells, 61] tensor.
- Model: Keras `Sequential([LSTM(100), Dense(1)])`: the LSTM's last hidden state, one linear
  output (`Controller`).
- Labels: 100 x the reward of each measured candidate against the previous round's best
  (`score(...) * 100`; `controller_label` in reward.py).
- Training (`fit_controller`): MSE loss, Adam with Keras' default learning rate 1e-3, batch 64,
  the training set shuffled every epoch, `nb_epoch=10000`. The FIRST 50 samples are the
  validation set and the rest train; `ModelCheckpoint(monitor='val_loss', save_best_only=True,
  mode='min')` keeps the weights of the epoch with the lowest validation loss (the first such
  epoch: Keras saves only on a strict improvement), and those are the controller's weights.
- Use: predict every new candidate's reward and train the top k (`predict`, `top_k`).
  `rank_correlation` (Spearman's rho) measures how well a controller ranks.

Where the suite differs, or chooses where the code is silent:

1. Gates: torch's `nn.LSTM` uses the logistic sigmoid for its gates; the Keras 1 / early Keras 2
   LSTM the code ran (Python 2, `nb_epoch`) defaulted to `hard_sigmoid` (clip(0.2 x + 0.5, 0, 1)).
   The cell and output activations are tanh in both.
2. Initialisation: Keras 2's defaults, chosen here: input weights glorot-uniform over the whole
   [61 x 4h] kernel (limit sqrt(6 / (61 + 4h))), recurrent weights orthogonal over the whole
   [h x 4h] kernel, biases zero except the forget gate's, which is 1 (`unit_forget_bias`); torch's
   second bias (`bias_hh`) is zero, so the sums match. The Dense layer: glorot-uniform weights,
   zero bias. Gate order is the same in both (input, forget, cell, output).
3. Adam: torch's places epsilon (1e-8) after the bias correction, Keras' before it (an effective
   epsilon of 1e-8 x sqrt(1 - beta2^t)); otherwise the same update (beta 0.9, 0.999).
4. Few samples: the code always validates on the first 50. When there are too few for that
   (n <= 2 x valid), the suite validates on the first n // 5 (at least 1 when n >= 2) and trains
   on the rest; with n < 2 nothing validates, everything trains, and the last epoch's weights are
   kept. Epochs are counted from 1, as Keras logs them.
5. Padding: the code pads every network by (longest network's cells - its cells) / 5 + pad_extra
   per block, which assumes equal cell counts in all blocks (true of every grown or trimmed
   candidate); the suite pads each block to (most cells of any block) + pad_extra, the same number
   whenever that holds, and the caller passes the union of training and candidate specs so that
   training and prediction share one length (the code pads training and test data separately).
6. Determinism: initialisation and shuffling draw from a `torch.Generator` seeded by `seed`; the
   global RNG is not used. Validation runs as one whole-set forward pass (Keras averages batches of
   64 weighted by their size: the same MSE).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from nas_impl.errors import NasReproError
from nas_impl.models.memnas_cells import CELL_DIMS, NUM_BLOCKS, encode_cells

CELL_SIZE = sum(CELL_DIMS)  # 61 numbers per cell
PAD_EXTRA = 2  # controller.py: gen_trainingData_score(..., 2)


# Input -----------------------------------------------------------------------------------------

def _encoded(specs: Sequence[Any]) -> list[list[list[list[float]]]]:
    if isinstance(specs, (str, dict)) or not isinstance(specs, Sequence):
        raise NasReproError("MemNAS controller: expected a list of memnas-cells specs (one per network), "
                            f"not {type(specs).__name__}")
    if not specs:
        raise NasReproError("MemNAS controller: the list of specs is empty: give at least one network")
    return [encode_cells(spec) for spec in specs]


def sequence_length(specs: Sequence[Any], pad_extra: int = PAD_EXTRA) -> int:
    """Cells per block of the controller's input: the most cells of any block of `specs`, plus
    `pad_extra` all-zero cells (the LSTM reads 5 times this many vectors). Pass the union of the
    training and candidate specs so that both are padded alike."""
    if isinstance(pad_extra, bool) or not isinstance(pad_extra, int) or pad_extra < 0:
        raise NasReproError(f"MemNAS controller: pad_extra = {pad_extra!r}: expected an integer >= 0 "
                            f"(the official code pads {PAD_EXTRA})")
    return max(len(block) for blocks in _encoded(specs) for block in blocks) + pad_extra


def controller_input(specs: Sequence[Any], cells_per_block: int) -> torch.Tensor:
    """[N, 5 x cells_per_block, 61] float32: each network's blocks in order, each block's cell
    vectors followed by all-zero vectors up to `cells_per_block`."""
    if isinstance(cells_per_block, bool) or not isinstance(cells_per_block, int) or cells_per_block < 1:
        raise NasReproError(f"MemNAS controller: cells_per_block = {cells_per_block!r}: expected a positive "
                            "integer (use sequence_length(specs))")
    encoded = _encoded(specs)
    x = torch.zeros(len(encoded), NUM_BLOCKS * cells_per_block, CELL_SIZE, dtype=torch.float32)
    for n, blocks in enumerate(encoded):
        for b, block in enumerate(blocks):
            if len(block) > cells_per_block:
                raise NasReproError(
                    f"MemNAS controller: network {n} (0-based) has {len(block)} cells in block {b + 1}, more "
                    f"than cells_per_block = {cells_per_block}: compute it with sequence_length() over every "
                    "spec the controller trains on and predicts (training and candidates together)")
            if block:
                start = b * cells_per_block
                x[n, start:start + len(block)] = torch.tensor(block, dtype=torch.float32)
    return x


# Model -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ControllerSettings:
    """controller.py's: LSTM(100), nb_epoch 10000, batch 64, Adam (Keras default lr), first 50 validate."""

    hidden: int = 100
    epochs: int = 10000
    batch_size: int = 64
    lr: float = 1e-3
    valid: int = 50

    def __post_init__(self) -> None:
        for name in ("hidden", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NasReproError(f"MemNAS controller setting '{name}' = {value!r}: expected a positive integer")
        if isinstance(self.valid, bool) or not isinstance(self.valid, int) or self.valid < 0:
            raise NasReproError(f"MemNAS controller setting 'valid' = {self.valid!r}: expected an integer >= 0 "
                                "(the official code validates on the first 50 samples)")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise NasReproError(f"MemNAS controller setting 'lr' = {self.lr!r}: expected a positive number "
                                "(Keras' Adam default: 1e-3)")


class Controller(nn.Module):
    """LSTM(61 -> hidden) over the cell sequence; its last hidden state -> Linear(hidden, 1).
    Initialised as Keras 2 initialises LSTM and Dense (module docstring, point 2), from
    `generator` when given (else from torch's global RNG)."""

    def __init__(self, hidden: int = 100, generator: torch.Generator | None = None) -> None:
        super().__init__()
        # built on the meta device, so torch's own init draws nothing from the global RNG
        self.lstm = nn.LSTM(CELL_SIZE, hidden, batch_first=True, device="meta").to_empty(device="cpu")
        self.head = nn.Linear(hidden, 1, device="meta").to_empty(device="cpu")
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        hidden = self.lstm.hidden_size
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0, generator=generator)  # [4h, 61]: fans 61, 4h
        nn.init.orthogonal_(self.lstm.weight_hh_l0, generator=generator)  # [4h, h]: orthonormal columns
        self.lstm.bias_ih_l0.zero_()
        self.lstm.bias_ih_l0[hidden:2 * hidden] = 1.0  # forget gate (order: input, forget, cell, output)
        self.lstm.bias_hh_l0.zero_()
        nn.init.xavier_uniform_(self.head.weight, generator=generator)
        self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, T, 61] -> predicted label (100 x reward) per network, [N]."""
        _, (h, _) = self.lstm(x)
        return self.head(h[-1]).squeeze(-1)


@dataclass
class ControllerFit:
    """A trained controller (the best-validation weights) and its training record. `train_loss`
    and `valid_loss` hold one value per epoch (epoch k at index k - 1); `best_epoch` counts from
    1; with no validation set `valid_loss` is empty and the last epoch is kept."""

    model: Controller
    best_epoch: int
    best_valid_loss: float
    train_loss: list[float]
    valid_count: int
    epochs_run: int
    valid_loss: list[float] = field(default_factory=list)


def validation_count(n: int, valid: int) -> int:
    """How many of the first samples validate: `valid` (the code's 50) when n > 2 x valid, else
    the suite's rule n // 5, at least 1 when n >= 2, none when n < 2."""
    if n > 2 * valid:
        return valid
    if n < 2:
        return 0
    return max(1, n // 5)


def _check_data(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != CELL_SIZE:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise NasReproError(f"MemNAS controller: inputs of shape {shape}: expected [N, T, {CELL_SIZE}] "
                            "(use controller_input)")
    y = torch.as_tensor(y, dtype=torch.float32)
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise NasReproError(f"MemNAS controller: {tuple(y.shape)} labels for {x.shape[0]} networks: expected one "
                            "label (100 x reward, controller_label) per network")
    if x.shape[0] == 0:
        raise NasReproError("MemNAS controller: no training data: measure at least one network first")
    if not (torch.isfinite(y).all() and torch.isfinite(x).all()):
        raise NasReproError("MemNAS controller: the inputs or labels hold NaN or Inf: check the measured rewards")
    return x.to(torch.float32), y


def fit_controller(x: torch.Tensor, y: torch.Tensor, settings: ControllerSettings = ControllerSettings(),
                   seed: int = 0) -> ControllerFit:
    """Train a `Controller` on x [N, T, 61] and labels y [N] as controller.py does (module
    docstring): the first `valid_count` samples validate, the rest train; the weights of the
    epoch with the lowest validation loss are returned."""
    x, y = _check_data(x, y)
    n = x.shape[0]
    n_valid = validation_count(n, settings.valid)
    x_valid, y_valid = x[:n_valid], y[:n_valid]
    x_train, y_train = x[n_valid:], y[n_valid:]
    n_train = x_train.shape[0]

    generator = torch.Generator().manual_seed(seed)
    model = Controller(settings.hidden, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    loss_fn = nn.MSELoss()

    train_loss: list[float] = []
    valid_loss: list[float] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(n_train, generator=generator)
        total = 0.0
        for start in range(0, n_train, settings.batch_size):
            index = order[start:start + settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            total += loss.item() * index.numel()  # Keras' epoch loss: batch losses weighted by size
        train_loss.append(total / n_train)
        if n_valid:
            current = float(loss_fn(predict(model, x_valid), y_valid))
            valid_loss.append(current)
            if current < best_loss:  # Keras' ModelCheckpoint(mode='min') saves on strict improvement
                best_loss, best_epoch = current, epoch
                best_state = copy.deepcopy(model.state_dict())
    if best_state is None:  # no validation set (or never finite): keep the last epoch, as Keras would
        best_epoch = settings.epochs
    else:
        model.load_state_dict(best_state)
    model.eval()
    return ControllerFit(model=model, best_epoch=best_epoch, best_valid_loss=best_loss, train_loss=train_loss,
                         valid_count=n_valid, epochs_run=settings.epochs, valid_loss=valid_loss)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's predicted labels for x [N, T, 61], [N], in eval mode without gradients
    (the model's train/eval mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        return model(x.to(torch.float32)).detach()
    finally:
        model.train(was_training)


# Ranking ---------------------------------------------------------------------------------------

def _values(values: Any, what: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).flatten() if not isinstance(values, torch.Tensor) \
        else values.detach().to(torch.float64).flatten()
    if torch.isnan(t).any():
        raise NasReproError(f"MemNAS controller: {what} hold NaN: cannot rank them")
    return t


def average_ranks(values: Any) -> torch.Tensor:
    """Ranks from 1 (smallest), tied values sharing the mean of their ranks, float64."""
    t = _values(values, "the values")
    _, inverse, counts = torch.unique(t, sorted=True, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)  # last rank of each distinct value
    mean_rank = ends - (counts.to(torch.float64) - 1) / 2
    return mean_rank[inverse]


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman's rho of two equally long sequences: Pearson's correlation of their average ranks
    (ties share the mean rank). NaN when either side is constant (rho is undefined)."""
    ta, tb = _values(a, "the first values"), _values(b, "the second values")
    if ta.numel() != tb.numel() or ta.numel() < 2:
        raise NasReproError(f"MemNAS controller: rank correlation of {ta.numel()} and {tb.numel()} values: "
                            "expected two sequences of the same length, at least 2")
    ra, rb = average_ranks(ta), average_ranks(tb)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    if denominator == 0.0:
        return math.nan
    return float((ra * rb).sum()) / denominator


def top_k(scores: Any, k: int) -> list[int]:
    """Indices of the k highest scores, highest first, ties broken by the lower index; all of
    them, in that order, when k exceeds their number."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise NasReproError(f"MemNAS controller: top_k k = {k!r}: expected an integer >= 0")
    values = _values(scores, "the scores").tolist()
    return sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
