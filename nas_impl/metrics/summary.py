"""All static metrics of a network in one dict (what `nasrepro metrics` prints as JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn as nn

from nas_impl.metrics.macs import count_macs
from nas_impl.metrics.memory import activation_memory
from nas_impl.metrics.params import count_params, param_bytes


def model_metrics(model: nn.Module, input_size: Sequence[int]) -> dict[str, Any]:
    """params (all, BN included), params_no_norm (conv/FC only, as AutoSlim/TAS count), macs
    (conv + linear, one image), param_bytes, and MemNAS-style memory at batch 1, fp32."""
    memory = activation_memory(model, input_size)
    return {
        "input_size": list(input_size),
        "params": count_params(model),
        "params_no_norm": count_params(model, exclude_norm=True),
        "macs": count_macs(model, input_size),
        "param_bytes": param_bytes(model),
        "peak_activation_bytes": memory["peak_activation_bytes"],
        "total_memory_bytes": memory["total_bytes"],
    }


def spec_macs(spec: dict[str, Any], input_size: Sequence[int]) -> int:
    """The MACs of a spec's network at `input_size` (built here, then dropped)."""
    from nas_impl.models import build_model

    return count_macs(build_model(spec), input_size)
