"""`nasrepro cost --calibrate`: time a few plain training steps of each network on this device.

One step is what the suite's trainer does for a batch, without the data path: the network built by
`build_model` (head and stem fitted to the dataset), a forward pass under bf16 autocast on CUDA in
channels_last (images), the task's loss, backward and a plain SGD step (momentum 0.9). Two warm-up
steps, then `steps` timed ones (CUDA synchronised at both ends); the rate is the images (tokens) of
the timed steps over their seconds. The rates are cached in `results/cost/calibration.json` under
the device's name, so a later `nasrepro cost` without --calibrate uses them too.
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.cost.rates import CALIBRATION_FILE, CALIBRATION_FORMAT, load_calibration
from nas_impl.methods.work_units import DATA_SIZES, Network

WARMUP_STEPS = 2
CPU_BATCH_CAP = 32  # a CPU step at ImageNet's batch of 256-2048 and 224 px would take minutes


def step_inputs(network: Network, batch: int,
                device: torch.device) -> tuple[torch.nn.Module, Any, torch.Tensor, torch.Tensor, int]:
    """(model, task, input batch, targets, units a step processes) of one network at `batch`."""
    from nas_impl.models import build_model, natural_input
    from nas_impl.tasks import task_for_dataset

    size = DATA_SIZES[network.dataset]
    task = task_for_dataset(network.dataset)
    spec = network.spec
    generator = torch.Generator().manual_seed(0)
    if size.unit == "images":
        channels, height, width = (int(v) for v in size.input.split("x"))
        spec = {**spec, "num_classes": size.classes, "in_channels": channels}
        model = build_model(spec).to(device, memory_format=torch.channels_last)
        x = torch.randn(batch, channels, height, width, generator=generator).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, size.classes, (batch,), generator=generator).to(device)
        return model, task, x, y, batch
    spec = {**spec, "vocab_size": size.classes}
    window = int(natural_input(spec)[0])
    model = build_model(spec).to(device)
    x = torch.randint(0, size.classes, (batch, window), generator=generator).to(device)
    y = torch.randint(0, size.classes, (batch, window), generator=generator).to(device)
    return model, task, x, y, batch * window


def time_steps(network: Network, batch: int, device: torch.device, steps: int) -> dict[str, Any]:
    """Rate of plain training steps of `network` at `batch` on `device` (one entry of the cache)."""
    from nas_impl.tasks.base import autocast

    model, task, x, y, units = step_inputs(network, batch, device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    bf16 = device.type == "cuda"

    def step() -> None:
        with autocast(device, bf16):
            outputs, _ = task.training_forward(model, x, None)
            loss = task.loss(outputs, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(WARMUP_STEPS):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    return {"rate": units * steps / seconds, "unit": network.unit, "batch": batch, "steps": steps,
            "seconds": seconds, "network": network.name, "input": network.input, "dataset": network.dataset,
            "bf16": bf16, "channels_last": network.unit == "images", "threads": torch.get_num_threads(),
            "torch": torch.__version__, "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def calibrate(networks: Sequence[tuple[Network, int, float]], device: torch.device, *, steps: int = 3,
              batch_cap: int | None = None, budget_s: float | None = None, max_networks: int | None = None,
              log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict[str, dict[str, Any]]:
    """network key -> cache entry for the networks timed, heaviest first, until `max_networks` or the
    time `budget_s` is used up (checked before each network). A batch that does not fit is halved."""
    if steps < 1:
        raise NasReproError(f"--steps {steps}: time at least one step")
    cap = batch_cap if batch_cap else (CPU_BATCH_CAP if device.type == "cpu" else None)
    start = time.perf_counter()
    out: dict[str, dict[str, Any]] = {}
    for i, (network, batch, _) in enumerate(networks):
        if max_networks is not None and len(out) >= max_networks:
            log(f"calibrate: stopped after {len(out)} network(s) (--max-networks); {len(networks) - i} left")
            break
        if budget_s is not None and time.perf_counter() - start >= budget_s:
            log(f"calibrate: time budget of {budget_s:g} s used; {len(networks) - i} network(s) left")
            break
        size = max(1, min(batch or 1, cap) if cap else batch or 1)
        while True:
            try:
                entry = time_steps(network, size, device, steps)
                break
            except RuntimeError as err:
                if not _is_oom(err) or size == 1:
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                size //= 2
        if size < (batch or 1):
            entry["batch_note"] = f"recipe batch {batch}, timed at {size}"
        out[network.key] = entry
        log(f"calibrate: {network.name} @ {network.input}, batch {size}: {entry['rate']:.4g} {network.unit}/s "
            f"({entry['seconds']:.2f} s for {steps} steps)")
    return out


def save(results: str | Path, device_name: str, entries: dict[str, dict[str, Any]]) -> Path:
    """Merge `entries` into the cache under `device_name`; returns the cache's path."""
    from nas_impl.io import write_json_atomic

    path = Path(results) / CALIBRATION_FILE
    devices = load_calibration(Path(results))
    devices.setdefault(device_name, {}).update(entries)
    write_json_atomic(path, {"format": CALIBRATION_FORMAT, "devices": devices})
    return path
