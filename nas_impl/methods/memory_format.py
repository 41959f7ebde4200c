"""The memory format of a super-network whose convolutions read sliced weights (TAS, AutoSlim)."""

from __future__ import annotations

import torch


def sliced_net_memory_format(device: torch.device | str, backward: bool = True) -> torch.memory_format:
    """channels_last, except where a backward pass runs on CPU. There oneDNN's channels_last weight
    gradient for sliced convolutions is not deterministic and, with one thread, corrupts the heap
    (torch 2.14, "double free or corruption"); NCHW is exact, and faster: an AutoSlim test epoch
    3.7 s against 12-16 s, a TAS ResNet-20 search step (128 + 128 images, 2 threads) 1.26 s against
    1.90 s (channel slices of channels_last maps are strided). Forward-only slimming stays
    channels_last (1.6x faster than NCHW on CPU)."""
    cpu_backward = torch.device(device).type == "cpu" and backward
    return torch.contiguous_format if cpu_backward else torch.channels_last
