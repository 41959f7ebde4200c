"""Parameter counts.

Suite convention: `count_params` counts every trainable and frozen parameter of the module,
BN gamma/beta and biases included (what `sum(p.numel() for p in model.parameters())` and
torchvision report; ProxylessNAS counts the same way). BN running statistics are buffers and
are not parameters. `exclude_norm=True` drops normalisation-layer parameters, which is how
AutoSlim, TAS and MemNAS count (conv + FC weights and biases only).
"""

from __future__ import annotations

import torch.nn as nn

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _params(model: nn.Module, exclude_norm: bool) -> list[nn.Parameter]:
    if not exclude_norm:
        return list(model.parameters())
    skip = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    return [p for p in model.parameters() if id(p) not in skip]


def count_params(model: nn.Module, exclude_norm: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in _params(model, exclude_norm))


def param_bytes(model: nn.Module, exclude_norm: bool = False) -> int:
    """Bytes the parameters occupy in their current dtypes."""
    return sum(p.numel() * p.element_size() for p in _params(model, exclude_norm))
