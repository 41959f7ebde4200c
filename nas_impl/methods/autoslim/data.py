"""AutoSlim's data: a class-balanced held-out part of the training set for slimming, the rest
for the super-network (the official code holds out 50k ImageNet training images; the TF2
re-implementation and a CIFAR user 20% of CIFAR-10's, autoslim.md §8)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.methods.autoslim.recipe import SearchRecipe
from nas_impl.runs import training_subset


def memory_format(device: torch.device | str, backward: bool = True) -> torch.memory_format:
    """channels_last, except where a backward pass runs on CPU: there oneDNN's channels_last weight
    gradient for the super-network's sliced convolutions is not deterministic and, with one thread,
    corrupts the heap (torch 2.14, "double free or corruption"). NCHW is exact there, and faster
    (3.7 s against 12-16 s for a tiny test epoch); forward-only slimming stays channels_last (1.6x
    faster than NCHW on CPU, the same slimming path)."""
    cpu_backward = torch.device(device).type == "cpu" and backward
    return torch.contiguous_format if cpu_backward else torch.channels_last


@dataclass
class SlimData:
    train_loader: Any  # the super-network's part, augmented and shuffled (on the device, or a DataLoader)
    held_out: list[tuple[torch.Tensor, torch.Tensor]]  # fixed batches that score slimming candidates
    num_classes: int
    input_size: tuple[int, int, int]
    record: dict[str, Any]


def slim_data(dataset: str, recipe: SearchRecipe, seed: int, device: torch.device,
              data_root: str | Path | None) -> SlimData:
    from nas_impl import data

    if dataset == "imagenet":
        return _imagenet_slim_data(recipe, seed, device, data_root)
    ds = data.load_dataset(dataset, root=data_root)
    weights, settings = recipe.weights, recipe.autoslim
    record: dict[str, Any] = {"dataset": dataset}
    x, y = training_subset(dataset, ds.train_x, ds.train_y, weights.train_subset, record)
    train_idx, scored = _split(dataset, y, recipe, record)
    common = dict(mean=ds.mean, std=ds.std, device=device)
    train_loader = data.TensorLoader(x[train_idx], y[train_idx], weights.batch_size, seed=seed, shuffle=True,
                                     drop_last=True, augment=data.Augmentation.from_dict(weights.augment),
                                     channels_last=memory_format(device) == torch.channels_last, **common)
    if len(train_loader) == 0:
        raise NasReproError(f"search recipe batch_size {weights.batch_size} is larger than the super-network's "
                            f"{len(train_idx)} training images: lower 'batch_size' or raise 'train_subset'")
    held_loader = data.TensorLoader(x[scored], y[scored], settings.slim_batch_size, channels_last=True, **common)
    return SlimData(train_loader, list(held_loader), ds.num_classes, ds.input_size, record)


def _split(dataset: str, labels: torch.Tensor, recipe: SearchRecipe,
           record: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(super-network indices, scored held-out indices), class-balanced, seeded by `split_seed`."""
    from nas_impl import data

    settings = recipe.autoslim
    train_idx, held_idx = data.holdout(labels, round(settings.holdout * len(labels)), seed=settings.split_seed)
    if settings.slim_images > len(held_idx):
        raise NasReproError(f"search recipe key 'slim_images' = {settings.slim_images} exceeds the {len(held_idx)} "
                            "held-out images: lower it or raise 'holdout'")
    scored = held_idx[data.subset(labels[held_idx], settings.slim_images, seed=settings.split_seed)]
    record["slim_split"] = data.SplitRecord.create(
        dataset, settings.split_seed, {"supernet": len(train_idx), "held_out": len(held_idx),
                                       "scored": len(scored)}, train_idx, held_idx, scored).to_dict()
    return train_idx, scored


def _imagenet_slim_data(recipe: SearchRecipe, seed: int, device: torch.device, data_root: str | Path | None,
                        workers: int = min(8, os.cpu_count() or 1)) -> SlimData:
    """ImageNet's class folders: the super-network reads its part through worker processes; the
    scored held-out images (the official code: one batch of 2,048) are decoded once, with the
    evaluation transform, and kept on the device."""
    from nas_impl import data

    folders = data.load_imagenet(data_root)
    train = folders.train_dataset()
    labels = torch.as_tensor(train.targets)
    record: dict[str, Any] = {"dataset": "imagenet"}
    pool = torch.arange(len(labels))
    if recipe.weights.train_subset:
        pool = data.subset(labels, recipe.weights.train_subset, seed=0)
        record["train_subset"] = data.SplitRecord.create("imagenet", 0, {"train_subset": len(pool)}, pool).to_dict()
    train_idx, scored = _split("imagenet", labels[pool], recipe, record)
    train_idx, scored = pool[train_idx], pool[scored]
    train_loader = data.make_loader(torch.utils.data.Subset(train, train_idx.tolist()), recipe.weights.batch_size,
                                    shuffle=True, workers=workers, seed=seed, drop_last=True)
    held = torch.utils.data.Subset(folders.train_dataset(folders.val_transform()), scored.tolist())
    held_out = [(x.to(device, memory_format=memory_format(device, backward=False)), y.to(device)) for x, y in
                data.make_loader(held, recipe.autoslim.slim_batch_size, shuffle=False, workers=workers, seed=seed)]
    info = data.DATASET_INFO["imagenet"]
    return SlimData(train_loader, held_out, info.num_classes, info.input_size, record)
