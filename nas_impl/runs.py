"""From command-line names to the objects of one run: device, dataset, loaders, model spec."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.training.recipe import Recipe


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NasReproError(f"device '{name}' requested but CUDA is not available: use --device cpu or auto")
    return torch.device(name)


def parse_input_size(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise NasReproError(f"--input-size '{text}' must look like CxHxW, e.g. 3x32x32") from None
    if min(c, h, w) < 1:
        raise NasReproError(f"--input-size '{text}': each of C, H and W must be at least 1, e.g. 3x32x32")
    return c, h, w


@dataclass
class ImageData:
    train_loader: Any
    eval_loader: Any
    num_classes: int
    input_size: tuple[int, int, int]
    record: dict[str, Any]


def image_data(dataset: str, recipe: Recipe, seed: int, device: torch.device, data_root: str | Path | None,
               split: str = "test") -> ImageData:
    """Loaders for training on `dataset`'s train split and evaluating on `split` (train or test)."""
    from nas_impl import data

    if dataset == "imagenet":
        return imagenet_data(recipe, seed, data_root, split)
    ds = data.load_dataset(dataset, root=data_root)
    record: dict[str, Any] = {"dataset": dataset}
    train_x, train_y = training_subset(dataset, ds.train_x, ds.train_y, recipe.train_subset, record)
    test_x, test_y = ds.test_x, ds.test_y
    if recipe.test_subset:
        idx = data.subset(test_y, recipe.test_subset, seed=0)
        test_x, test_y = test_x[idx], test_y[idx]
        record["test_subset"] = data.SplitRecord.create(dataset, 0, {"test_subset": recipe.test_subset}, idx).to_dict()
    if split == "train":
        test_x, test_y = train_x, train_y
    common = dict(mean=ds.mean, std=ds.std, device=device, channels_last=True)
    train_loader = data.TensorLoader(
        train_x, train_y, recipe.batch_size, augment=data.Augmentation.from_dict(recipe.augment),
        shuffle=True, drop_last=True, seed=seed, **common,
    )
    eval_loader = data.TensorLoader(
        test_x, test_y, recipe.eval_batch_size, augment=None, shuffle=False, drop_last=False, seed=seed, **common,
    )
    record.update(train_images=len(train_y), eval_images=len(test_y), eval_split=split)
    return ImageData(train_loader, eval_loader, ds.num_classes, ds.input_size, record)


def training_subset(dataset: str, x: torch.Tensor, y: torch.Tensor, size: int | None,
                    record: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's class-balanced `train_subset` (seed 0) of a training split, noted in `record`."""
    from nas_impl import data

    if not size:
        return x, y
    idx = data.subset(y, size, seed=0)
    record["train_subset"] = data.SplitRecord.create(dataset, 0, {"train_subset": size}, idx).to_dict()
    return x[idx], y[idx]


def architecture_metrics(spec: Any, input_size: tuple[int, int, int], origin: str,
                         dataset: str | None = None) -> dict[str, Any]:
    """Params, MACs and memory of `spec` at `input_size`; counting them runs the network once, so a
    network that cannot take this input fails here, before any training, with one clear message."""
    from nas_impl.metrics import model_metrics
    from nas_impl.models import build_model

    model = build_model(spec)
    try:
        return model_metrics(model, input_size)
    except RuntimeError as err:
        raise _does_not_fit(origin, input_size, dataset, err) from None


def check_fits(model: torch.nn.Module, input_size: tuple[int, int, int], num_classes: int, origin: str,
               dataset: str) -> None:
    """One forward pass of a 2-image batch of `input_size`, and the number of classes it predicts."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.zeros(2, *input_size, device=device))
    except RuntimeError as err:
        raise _does_not_fit(origin, input_size, dataset, err) from None
    finally:
        model.train(was_training)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise NasReproError(f"{origin}: the network predicts {tuple(logits.shape[1:])} outputs, but dataset "
                            f"'{dataset}' has {num_classes} classes: evaluate it on the dataset it was trained on")


def _does_not_fit(origin: str, input_size: tuple[int, int, int], dataset: str | None,
                  err: RuntimeError) -> NasReproError:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    size = "x".join(str(v) for v in input_size)
    on = f"dataset '{dataset}' ({size} images)" if dataset else f"{size} inputs"
    return NasReproError(f"{origin}: the network cannot run on {on}: {lines[0] if lines else type(err).__name__}; "
                         "use a spec made for this input size and channel count, or another dataset")


def adapt_spec(spec: dict[str, Any], num_classes: int, in_channels: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the spec's head and stem to the dataset; return the spec and what was changed."""
    changed = {}
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if spec.get(key) != value:
            changed[key] = {"spec": spec.get(key), "dataset": value}
    return {**spec, "num_classes": num_classes, "in_channels": in_channels}, changed


def imagenet_data(recipe: Recipe, seed: int, data_root: str | Path | None, split: str,
                  workers: int = min(8, os.cpu_count() or 1)) -> ImageData:
    """ImageNet from its class folders through worker processes (too large to hold on the device)."""
    from nas_impl import data

    folders = data.load_imagenet(data_root)
    train = folders.train_dataset()
    evaluation = folders.val_dataset() if split == "test" else folders.train_dataset(folders.val_transform())
    record: dict[str, Any] = {"dataset": "imagenet", "eval_split": split}
    for name, size in (("train_subset", recipe.train_subset), ("test_subset", recipe.test_subset)):
        if size:
            target = train if name == "train_subset" else evaluation
            idx = data.subset(target.targets, size, seed=0)
            record[name] = data.SplitRecord.create("imagenet", 0, {name: size}, idx).to_dict()
            if name == "train_subset":
                train = torch.utils.data.Subset(train, idx.tolist())
            else:
                evaluation = torch.utils.data.Subset(evaluation, idx.tolist())
    train_loader = data.make_loader(train, recipe.batch_size, shuffle=True, workers=workers, seed=seed, drop_last=True)
    eval_loader = data.make_loader(evaluation, recipe.eval_batch_size, shuffle=False, workers=workers, seed=seed)
    record.update(train_images=len(train), eval_images=len(evaluation))
    return ImageData(train_loader, eval_loader, data.DATASET_INFO["imagenet"].num_classes,
                     data.DATASET_INFO["imagenet"].input_size, record)
