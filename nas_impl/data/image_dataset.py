"""An in-memory image-classification dataset: uint8 images, int64 labels, normalisation stats."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nas_impl.errors import DataError


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 N×C×H×W images, in [0, 1] units.

    Uses a 256-bin histogram per channel, so the sums are exact integers before the final
    float64 arithmetic.
    """
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * values * values).sum() / total - mean * mean
        means.append(float(mean) / 255.0)
        stds.append(float(var.clamp_min(0).sqrt()) / 255.0)
    return tuple(means), tuple(stds)


@dataclass(frozen=True, eq=False)  # holds tensors: compare fields explicitly
class ImageDataset:
    """Train and test splits as uint8 N×C×H×W CPU tensors with int64 labels.

    `mean`/`std` are per-channel, in [0, 1] pixel units (as torchvision's Normalize expects).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(f"dataset {self.name}: {split} images must be uint8 N×C×H×W, "
                                f"got {x.dtype} with shape {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
                raise DataError(f"dataset {self.name}: {split} labels must be int64 of length {len(x)}, "
                                f"got {y.dtype} with shape {tuple(y.shape)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(f"dataset {self.name}: {split} labels span [{int(y.min())}, {int(y.max())}], "
                                f"outside [0, {self.num_classes - 1}]")
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DataError(f"dataset {self.name}: train images are {tuple(self.train_x.shape[1:])} "
                            f"but test images are {tuple(self.test_x.shape[1:])}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(f"dataset {self.name}: mean/std need {self.channels} values each")
        if len(self.classes) != self.num_classes:
            raise DataError(f"dataset {self.name}: {len(self.classes)} class names for "
                            f"{self.num_classes} classes")

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.channels, *self.image_size)

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, train={len(self.train_x)}, test={len(self.test_x)}, "
                f"input_size={self.input_size}, num_classes={self.num_classes})")
