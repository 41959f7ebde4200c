"""Channel-wise interpolation (CWI): resize the channel axis of a feature map (TAS §3.2)."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=None)
def _growing_bins(channels_in: int, channels_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last input channel of each output channel's adaptive-pooling bin.

    Adaptive pooling gives output j the bin [floor(j*c/C), ceil((j+1)*c/C)); when growing
    (c <= C) a bin holds one or two channels, so the bin mean is (first + last) / 2.
    """
    j = torch.arange(channels_out)
    first = j * channels_in // channels_out
    last = ((j + 1) * channels_in + channels_out - 1) // channels_out - 1
    return first, last


def cwi(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Resize N x C x H x W to N x `channels` x H x W by adaptive average pooling over C.

    TAS's v2 interpolation (adaptive_avg_pool3d over (C, H, W) to (channels, H, W)): shrinking
    averages channel bins, growing repeats channels. Growing, the search network's only case,
    is computed as two channel gathers: the same values at a third of the CPU time.
    """
    c = x.shape[1]
    if c == channels:
        return x
    if c < channels:
        first, last = (t.to(x.device) for t in _growing_bins(c, channels))
        return (x.index_select(1, first) + x.index_select(1, last)) * 0.5
    _, _, h, w = x.shape
    return F.adaptive_avg_pool3d(x.unsqueeze(1), (channels, h, w)).squeeze(1)


def scaled_cwi(x: torch.Tensor, channels: int, scale: torch.Tensor) -> torch.Tensor:
    """scale * cwi(x, channels), with the scale applied to the narrower map before the two gathers
    of a growing resize (a fifth less time forward and backward than scaling the result)."""
    c = x.shape[1]
    if c >= channels:
        return cwi(x, channels) * scale
    first, last = (t.to(x.device) for t in _growing_bins(c, channels))
    half = x * (0.5 * scale)
    return half.index_select(1, first) + half.index_select(1, last)
