"""Channel-wise interpolation (CWI): resize the channel axis of a feature map (TAS §3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cwi(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Resize N x C x H x W to N x `channels` x H x W by adaptive average pooling over C.

    TAS's v2 interpolation (adaptive_avg_pool3d over (C, H, W) to (channels, H, W)): shrinking
    averages channel bins, growing repeats channels.
    """
    if x.shape[1] == channels:
        return x
    _, _, h, w = x.shape
    return F.adaptive_avg_pool3d(x.unsqueeze(1), (channels, h, w)).squeeze(1)
