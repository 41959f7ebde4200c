"""Multiply-accumulates (MACs) of one inference, the quantity the five papers call "FLOPs".

Convention (DESIGN.md): MACs of convolutions and linear layers for ONE image, batch 1, eval
mode. A conv counts k_h * k_w * (C_in / groups) * C_out * H_out * W_out; a linear layer
in * out (also any matmul). Not counted: biases, BN, activations, pooling, residual adds,
softmax. Counted with `torch.utils.flop_counter.FlopCounterMode`, which reports 2 FLOPs per
MAC, hence the division by 2; it sees the operators that actually run, so functional convs and
matmuls inside custom modules are included.

Per-paper differences to keep in mind when comparing with published numbers: TAS's
docs/BASELINE.md adds the FC bias (+num_classes), and the recount of its released shapes in
tas.md §2 also adds average pools (C * H_out * W_out * k^2); AutoSlim adds C*H*W for the final
average pool. ResNet-20's "40.81M" (TAS) includes its two 1x1 shortcut convs; He et al.'s
zero-padding variant has 40.55M.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> int:
    """MACs of conv + linear layers for one input of shape `input_size` (C, H, W)."""
    device, dtype = model_device_dtype(model)
    x = torch.zeros(1, *input_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
