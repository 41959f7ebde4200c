"""AutoSlim's data: a class-balanced held-out part of the training set for slimming, the rest
for the super-network (the official code holds out 50k ImageNet training images; the TF2
re-implementation and a CIFAR user 20% of CIFAR-10's, autoslim.md §8)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.methods.autoslim.recipe import SearchRecipe
from nas_impl.methods.memory_format import sliced_net_memory_format as memory_format
from nas_impl.run_data import Holdout, run_data


@dataclass
class SlimData:
    train_loader: Any  # the super-network's part, augmented and shuffled (on the device, or a DataLoader)
    held_out: list[tuple[torch.Tensor, torch.Tensor]]  # fixed batches on the device that score slimming candidates
    num_classes: int
    input_size: tuple[int, int, int]
    record: dict[str, Any]


def slim_data(dataset: str, recipe: SearchRecipe, seed: int, device: torch.device,
              data_root: str | Path | None) -> SlimData:
    """The run-data builder's `Holdout` plan; the scored images are decoded once (with the evaluation
    transform) and kept on the device (the official code scores one batch of 2,048 ImageNet images)."""
    settings = recipe.autoslim
    plan = Holdout(settings.holdout, settings.split_seed, settings.slim_images, settings.slim_batch_size,
                   channels_last_train=memory_format(device) == torch.channels_last, record_key="slim_split",
                   train_part="supernet", keys=("slim_images", "holdout"))
    data = run_data(dataset, recipe.weights, seed, device, data_root, plan, evaluate=None)
    train_loader = data.loaders["train"]
    if len(train_loader) == 0:
        supernet_images = data.record["slim_split"]["sizes"]["supernet"]
        raise NasReproError(f"search recipe batch_size {recipe.weights.batch_size} is larger than the super-network's "
                            f"{supernet_images} training images: lower 'batch_size' or raise 'train_subset'")
    fmt = memory_format(device, backward=False)
    held_out = [(x.to(device, memory_format=fmt), y.to(device)) for x, y in data.loaders["scored"]]
    return SlimData(train_loader, held_out, data.num_classes, data.input_size, data.record)
