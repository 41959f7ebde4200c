"""A device-resident loader for small image datasets (CIFAR, Fashion-MNIST).

The uint8 images are copied to the training device once; every batch is gathered, augmented and
normalised there as one tensor, with no worker processes and no per-sample Python code.

Randomness: each epoch reseeds a private torch.Generator from (seed, epoch), so epoch k's order
and augmentation depend only on (seed, k). That is what makes resuming at epoch k bit-exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from nas_impl.data.augment import Augmentation, augment_normalized, augment_uint8
from nas_impl.errors import DataError
from nas_impl.seeds import derive_seed


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TensorLoader:
    """Batches of (float32 N×C×H×W normalised images, int64 labels) on `device`.

    Iterating uses epoch `e`, then moves on to `e + 1`; call `set_epoch(k)` to choose the epoch
    explicitly (e.g. when resuming). Iterating twice over the same epoch gives identical batches.
    """

    def __init__(
        self,
        images_uint8: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Augmentation | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        channels_last: bool = False,
    ) -> None:
        if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
            raise DataError(f"TensorLoader: images must be uint8 N×C×H×W, got {images_uint8.dtype} "
                            f"{tuple(images_uint8.shape)}")
        if labels.dim() != 1 or len(labels) != len(images_uint8):
            raise DataError(f"TensorLoader: {len(images_uint8)} images but labels of shape {tuple(labels.shape)}")
        channels = images_uint8.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise DataError(f"TensorLoader: mean/std need {channels} values each, got {list(mean)} / {list(std)}")
        if batch_size < 1:
            raise ValueError(f"TensorLoader: batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device) if device is not None else default_device()
        self.images = images_uint8.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        if augment is not None:
            augment.check_on_device("an in-memory dataset (TensorLoader)")
        self.augment = augment if augment is not None and not augment.is_identity else None
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.channels_last = channels_last
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply and one subtract.
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = mean_t / std_t
        self._generator = torch.Generator(device=self.device)
        self._epoch = 0

    @property
    def num_samples(self) -> int:
        return len(self.images)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will use."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        generator = self._generator.manual_seed(derive_seed("loader", self.seed, epoch))
        order = None
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=generator, device=self.device)
        for batch in range(len(self)):
            start = batch * self.batch_size
            stop = min(start + self.batch_size, self.num_samples)
            if order is None:
                x, y = self.images[start:stop], self.labels[start:stop]
            else:
                index = order[start:stop]
                x, y = self.images.index_select(0, index), self.labels.index_select(0, index)
            yield self._prepare(x, generator), y

    def _prepare(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.augment is not None:
            x = augment_uint8(x, self.augment, generator)
        x = x.to(torch.float32).mul_(self._scale).sub_(self._shift)
        if self.augment is not None:
            x = augment_normalized(x, self.augment, generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
