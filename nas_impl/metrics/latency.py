"""Inference latency, measured with `torch.utils.benchmark.Timer.blocked_autorange`.

The model runs in eval mode under no_grad on a random input of `batch_size` x `input_size`,
after a few warm-up calls. The Timer synchronises CUDA around each block and runs with
`threads` intra-op threads (default: torch's current setting). `median_ms` and `iqr_ms` are
per forward pass; `runs` is the number of timed forward passes. Latency depends on the
machine, so every result carries the device name and thread count.
"""

from __future__ import annotations

import copy
import platform
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from nas_impl.host import cpu_name
from nas_impl.metrics.macs import example_input, model_device_dtype


def device_name(device: torch.device | str) -> str:
    """GPU name from CUDA, or the CPU model from /proc/cpuinfo (platform.processor() otherwise)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def measure_latency(model: nn.Module, input_size: Sequence[int], batch_size: int = 1,
                    device: torch.device | str | None = None, min_run_time: float = 1.0,
                    threads: int | None = None, warmup: int = 3) -> dict[str, Any]:
    """Median and interquartile range of the forward-pass time, in milliseconds."""
    own_device = model_device_dtype(model)[0]
    device = torch.device(device) if device is not None else own_device
    net = model if device == own_device else copy.deepcopy(model).to(device)
    threads = threads or torch.get_num_threads()
    x = example_input(net, input_size, batch_size)
    if x.is_floating_point():
        x = torch.randn_like(x)

    @torch.no_grad()
    def forward() -> None:
        net(x)

    was_training = net.training
    net.eval()
    try:
        for _ in range(warmup):
            forward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        # Imported here: torch.utils.benchmark pulls in cpp_extension, which warns on CPU-only hosts.
        from torch.utils.benchmark import Timer

        timer = Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
        m = timer.blocked_autorange(min_run_time=min_run_time)
    finally:
        net.train(was_training)
    return {
        "median_ms": m.median * 1e3,
        "iqr_ms": m.iqr * 1e3,
        "runs": len(m.times) * m.number_per_run,
        "device": str(device),
        "device_name": device_name(device),
        "batch_size": batch_size,
        "threads": threads,
        "input_size": list(input_size),
    }
