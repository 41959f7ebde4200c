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
from nas_impl.runs import training_subset


@dataclass
class SlimData:
    train_loader: Any  # the super-network's part, augmented and shuffled
    held_out: list[tuple[torch.Tensor, torch.Tensor]]  # fixed batches that score slimming candidates
    num_classes: int
    input_size: tuple[int, int, int]
    record: dict[str, Any]


def slim_data(dataset: str, recipe: SearchRecipe, seed: int, device: torch.device,
              data_root: str | Path | None) -> SlimData:
    from nas_impl import data

    if dataset == "imagenet":
        raise NasReproError("AutoSlim search on ImageNet folders is not implemented yet: the suite trains the "
                            "released ImageNet channel configurations (archs/) instead; search on a CIFAR dataset")
    ds = data.load_dataset(dataset, root=data_root)
    weights, settings = recipe.weights, recipe.autoslim
    record: dict[str, Any] = {"dataset": dataset}
    x, y = training_subset(dataset, ds.train_x, ds.train_y, weights.train_subset, record)
    held_size = round(settings.holdout * len(y))
    train_idx, held_idx = data.holdout(y, held_size, seed=settings.split_seed)
    if settings.slim_images > len(held_idx):
        raise NasReproError(f"search recipe key 'slim_images' = {settings.slim_images} exceeds the {len(held_idx)} "
                            "held-out images: lower it or raise 'holdout'")
    scored = held_idx[data.subset(y[held_idx], settings.slim_images, seed=settings.split_seed)]
    record["slim_split"] = data.SplitRecord.create(
        dataset, settings.split_seed, {"supernet": len(train_idx), "held_out": len(held_idx),
                                       "scored": len(scored)}, train_idx, held_idx, scored).to_dict()
    common = dict(mean=ds.mean, std=ds.std, device=device, channels_last=True)
    train_loader = data.TensorLoader(x[train_idx], y[train_idx], weights.batch_size, seed=seed, shuffle=True,
                                     drop_last=True, augment=data.Augmentation.from_dict(weights.augment), **common)
    if len(train_loader) == 0:
        raise NasReproError(f"search recipe batch_size {weights.batch_size} is larger than the super-network's "
                            f"{len(train_idx)} training images: lower 'batch_size' or raise 'train_subset'")
    held_loader = data.TensorLoader(x[scored], y[scored], settings.slim_batch_size, **common)
    return SlimData(train_loader, list(held_loader), ds.num_classes, ds.input_size, record)
