"""Batch-wise data augmentation on the training device: random crop, flip, cutout.

Every function takes a whole N×C×H×W batch and draws per-sample randomness from the given
torch.Generator (never the global RNG), so results depend only on the generator's state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas_impl.data.augment_spec import Augmentation, augmentation_problem  # noqa: F401  (re-exported)


def crop_and_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of the zero-padded images (same size out) and random horizontal flip.

    Both are one gather: output pixel (i, j) of sample n reads padded pixel
    (dy[n] + i, dx[n] + j), or (dy[n] + i, dx[n] + W - 1 - j) when sample n is flipped.
    """
    n, c, h, w = images.shape
    device = images.device
    padded_w = w + 2 * padding
    if padding:
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
        images = F.pad(images, (padding, padding, padding, padding))
    else:
        dy = dx = torch.zeros(n, dtype=torch.int64, device=device)
    cols = torch.arange(w, device=device).expand(n, w)
    if flip:
        flipped = torch.randint(0, 2, (n, 1), generator=generator, device=device).bool()
        cols = torch.where(flipped, w - 1 - cols, cols)
    rows = dy[:, None] + torch.arange(h, device=device)
    cols = dx[:, None] + cols
    source = (rows[:, :, None] * padded_w + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(images.reshape(n, c, -1), 2, source).view(n, c, h, w)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size×size square per sample, in place (DeVries & Taylor, 2017).

    The square's centre is uniform over the image and the square is clipped at the border, as in
    the reference implementation, so near the border less than size×size pixels are zeroed.
    """
    n, _, h, w = images.shape
    device = images.device
    cy = torch.randint(0, h, (n, 1), generator=generator, device=device)
    cx = torch.randint(0, w, (n, 1), generator=generator, device=device)
    top, left = cy - size // 2, cx - size // 2
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    in_rows = ((ys >= top) & (ys < top + size)).to(images.dtype)
    in_cols = ((xs >= left) & (xs < left + size)).to(images.dtype)
    # Multiplying by a 0/1 keep-mask is several times faster than masked_fill on CPU.
    keep = 1 - in_rows[:, None, :, None] * in_cols[:, None, None, :]
    return images.mul_(keep)


def augment_uint8(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """The pixel-space part (crop, flip), done on uint8 so padding is black as in torchvision."""
    if augmentation.crop_padding or augmentation.flip:
        return crop_and_flip(images, augmentation.crop_padding, augmentation.flip, generator)
    return images


def augment_normalized(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """The post-normalisation part (cutout zeroes normalised values, as the reference code does)."""
    if augmentation.cutout:
        return cutout(images, augmentation.cutout, generator)
    return images
