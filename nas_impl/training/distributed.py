"""Data-parallel training over several processes (`torchrun`), with one rule: a step sees the
recipe's batch, whatever the number of processes.

Every process draws the same global batch from identically seeded loaders and trains on its own
contiguous share of its rows (`World.shard`); DistributedDataParallel averages the gradients, so a
step's gradient is the mean over the global batch, as in one process, and `batch_size` and `lr`
mean what the recipe (and its paper) says for any number of devices: no scaling rule is needed.
The checkpoint holds the bare model and optimizer, so a run resumes with another world size.
What differs from one process: batch norm normalises each share with its own statistics
(SyncBatchNorm is CUDA-only and not applied yet), random layers (dropout) draw per process, and
floating-point sums run in another order. Only rank 0 writes
files; every rank evaluates the whole evaluation split (the same weights give the same numbers).
Backends: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nas_impl.errors import NasReproError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of a global batch's rows."""
        if not self.active:
            return batch
        share = len(batch) // self.size
        return batch[self.rank * share:(self.rank + 1) * share]

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise NasReproError(f"recipe key 'batch_size' = {batch_size} does not split over {self.size} processes: "
                                f"use a multiple of {self.size} (every step sees the recipe's whole batch)")

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module a training step calls: DistributedDataParallel around `model` when active."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else self.local_rank] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, *values: torch.Tensor) -> None:
        """Sum tensors over the processes, in place."""
        if self.active:
            for value in values:
                dist.all_reduce(value)


def world_from_env() -> World:
    """The world `torchrun` describes (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group; the device this rank trains on (its own GPU under CUDA)."""
    if not world.active:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def finish(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
