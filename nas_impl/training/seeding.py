"""Seeding: a run's randomness is a function of (seed, epoch) only.

Each epoch reseeds the global torch RNG (dropout, initialisation of later-built modules) and
the data loader from (seed, epoch) (`nas_impl.seeds`). A run resumed at an epoch boundary therefore
draws exactly the random numbers the uninterrupted run drew, without saving RNG states.
"""

from __future__ import annotations

import random

import torch

from nas_impl.seeds import derive_seed


def epoch_seed(seed: int, epoch: int) -> int:
    """The global torch RNG's seed for one epoch (the loader derives its own)."""
    return derive_seed("global", seed, epoch)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional for the trainer
        pass


def make_deterministic(device: torch.device) -> None:
    """Bit-reproducible kernels on CPU; on CUDA prefer cuDNN autotuning (speed) unless asked."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True
