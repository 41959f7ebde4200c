"""Seeded, class-balanced index splits, as pure functions of (labels, seed, sizes).

"Class-balanced" means stratified: each class contributes in proportion to its size, with the
rounding remainder given to the classes with the largest fractional share (ties: lower class
index). On a balanced dataset with a size divisible by the number of classes every class
contributes exactly size / num_classes. All randomness comes from a CPU torch.Generator seeded
with `seed`, so a split is identical on every machine and device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nas_impl.errors import DataError

LabelsLike = torch.Tensor | np.ndarray | Sequence[int]


def _as_labels(labels: LabelsLike) -> torch.Tensor:
    tensor = torch.as_tensor(labels).detach().cpu()
    if tensor.dim() != 1 or tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise DataError(f"split: labels must be a 1-D integer sequence, got {tensor.dtype} {tuple(tensor.shape)}")
    tensor = tensor.to(torch.int64)
    if len(tensor) and int(tensor.min()) < 0:
        raise DataError("split: labels must be non-negative class indices")
    return tensor


def _quotas(counts: torch.Tensor, size: int) -> torch.Tensor:
    """Per-class numbers of examples summing to `size`, proportional to `counts`."""
    total = int(counts.sum())
    exact = counts.to(torch.float64) * size / total
    quota = torch.div(counts * size, total, rounding_mode="floor")
    remainder = size - int(quota.sum())
    if remainder:
        fraction = exact - quota.to(torch.float64)
        # Stable sort on -fraction: largest share first, lower class index on ties.
        order = torch.sort(-fraction, stable=True).indices
        quota[order[:remainder]] += 1
    return quota


def _select(labels: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(selected, rest): a stratified random sample of `size` indices and its complement, sorted."""
    n = len(labels)
    if not 0 <= size <= n:
        raise DataError(f"split: cannot take {size} examples from a dataset of {n}")
    if n == 0:
        return labels.clone(), labels.clone()
    counts = torch.bincount(labels)
    quota = _quotas(counts, size)
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator)
    # Group the shuffled indices by class (stable, so each class stays in random order) and keep
    # the first quota[c] of class c.
    shuffled_labels = labels[perm]
    order = torch.sort(shuffled_labels, stable=True).indices
    grouped, grouped_labels = perm[order], shuffled_labels[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[grouped_labels]
    take = rank < quota[grouped_labels]
    return grouped[take].sort().values, grouped[~take].sort().values


def split_halves(labels: LabelsLike, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split every class 50/50 (|a| = N // 2), e.g. TAS's search split of the training set."""
    labels = _as_labels(labels)
    return _select(labels, len(labels) // 2, seed)


def holdout(labels: LabelsLike, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx) with a class-balanced held-out set of `size` examples."""
    val, train = _select(_as_labels(labels), size, seed)
    return train, val


def subset(labels: LabelsLike, size: int, seed: int) -> torch.Tensor:
    """A class-balanced random subset of `size` indices (e.g. for smoke runs)."""
    selected, _ = _select(_as_labels(labels), size, seed)
    return selected


def fingerprint(*parts: torch.Tensor) -> str:
    """Short sha256 of index tensors, to tell splits apart in result files."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(np.ascontiguousarray(part.detach().cpu().numpy().astype("<i8")).tobytes())
        hasher.update(b"|")
    return hasher.hexdigest()[:16]


@dataclass(frozen=True)
class SplitRecord:
    """Which split a result used: dataset, seed, part sizes and an index fingerprint."""

    dataset: str
    seed: int
    sizes: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""

    @classmethod
    def create(cls, dataset: str, seed: int, sizes: Mapping[str, int], *indices: torch.Tensor) -> SplitRecord:
        """E.g. SplitRecord.create("cifar10", 0, {"train": 45000, "val": 5000}, train_idx, val_idx)."""
        return cls(dataset, seed, dict(sizes), fingerprint(*indices))

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "seed": self.seed, "sizes": dict(self.sizes),
                "fingerprint": self.fingerprint}
