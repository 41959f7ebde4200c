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

Recurrent layers (a language model's LSTM) run as fused kernels that the flop counter does not
see, so they are counted analytically, per token and layer: gates * hidden * (input + hidden)
(4 gates for an LSTM, 3 for a GRU, 1 for a plain RNN), plus hidden * proj for a projection;
whatever the counter did attribute to them is replaced by that count. A language model's MACs
are those of its whole input window (batch 1, `seq_len` tokens).
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


def example_input(model: nn.Module, input_size: Sequence[int], batch_size: int = 1) -> torch.Tensor:
    """Zeros the network takes: images of `input_size`, or a language model's token window."""
    from nas_impl.tasks import task_of

    device, dtype = model_device_dtype(model)
    return task_of(model).example_input(input_size, batch_size, device, dtype)


_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


def recurrent_macs(module: nn.RNNBase, tokens: int) -> int:
    """MACs of a recurrent layer over `tokens` time steps of one sequence."""
    gates = _GATES[type(module)]
    hidden, proj = module.hidden_size, module.proj_size
    out = proj or hidden
    directions = 2 if module.bidirectional else 1
    total, width = 0, module.input_size
    for _ in range(module.num_layers):
        total += directions * (gates * hidden * (width + out) + hidden * proj)
        width = out * directions
    return total * tokens


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> int:
    """MACs of conv + linear (+ recurrent) layers for one input of shape `input_size` (C, H, W;
    a language model's (seq_len,))."""
    x = example_input(model, input_size)
    recurrent = {name: m for name, m in model.named_modules() if type(m) in _GATES}
    seen: dict[str, int] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: seen.__setitem__(name, _tokens(mod, args)))
             for name, m in recurrent.items()]
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    flops = counter.get_total_flops()
    if recurrent:
        counts = counter.get_flop_counts()
        root = type(model).__name__
        for name in recurrent:  # drop what the counter attributed to them (nothing for fused kernels)
            flops -= sum(counts.get(f"{root}.{name}", {}).values())
    return flops // 2 + sum(recurrent_macs(recurrent[name], tokens) for name, tokens in seen.items())


def _tokens(module: nn.RNNBase, args: tuple) -> int:
    """Time steps of one sequence in the layer's (batch 1) input."""
    x = args[0]
    return x.shape[1] if module.batch_first else x.shape[0]
