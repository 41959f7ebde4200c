"""One builder of a run's data: the trainer, `evaluate` and every search read their loaders here.

A run names a dataset, a recipe (batch sizes, augmentation, `train_subset` / `test_subset`) and a
split plan of the training pool (the training split, or its class-balanced `train_subset`):

- `Whole()`: all of it trains (`nasrepro train`);
- `Halves(split_seed)`: TAS's class-balanced 50/50 split, parts `weights` and `architecture`,
  both shuffled, augmented training loaders (seeds `seed` and `seed + 1`);
- `Holdout(fraction, split_seed, scored, batch_size)`: AutoSlim's class-balanced held-out part;
  `train` trains, and a class-balanced sample of the held-out images, `scored`, is read in a fixed
  order with the evaluation transform;
- `EvaluationOnly()`: no training loader (`nasrepro evaluate`: on ImageNet the 1.28M-image train
  folder is not read unless the evaluation split is the training split).

`evaluate` ('test', 'train', for text also 'valid'; or None) adds the `eval` loader. Where the images are (in memory on
the device, or ImageNet's class folders read by worker processes) is the source's business
(`TensorSource`, `FolderSource`); a text dataset (Penn Treebank) gives token windows instead.
Every subset and split is recorded (`record`) with its fingerprint.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.training.recipe import Recipe


@dataclass(frozen=True)
class Whole:
    pass


@dataclass(frozen=True)
class EvaluationOnly:
    pass


@dataclass(frozen=True)
class Halves:
    split_seed: int
    channels_last: bool = True  # False where a CPU backward pass needs NCHW (TAS's sliced convs)


@dataclass(frozen=True)
class Holdout:
    fraction: float
    split_seed: int
    scored: int  # held-out images that score (AutoSlim's slimming candidates)
    batch_size: int
    channels_last_train: bool = True  # False where a CPU backward pass needs NCHW (AutoSlim's sliced convs)
    # How the caller names it: the record's key, the training part, and the recipe keys of `scored`
    # and `fraction` (for the error that names them).
    record_key: str = "holdout_split"
    train_part: str = "train"
    keys: tuple[str, str] = ("scored", "fraction")
    size: int | None = None  # held-out images, exactly (replaces `fraction`; ProxylessNAS's valid_size)
    scored_shuffled: bool = False  # reshuffle the scored part every pass, dropping a last partial batch


SplitPlan = Whole | EvaluationOnly | Halves | Holdout


@dataclass
class RunData:
    loaders: dict[str, Any]  # part name -> loader: train / eval, weights / architecture, train / scored
    num_classes: int
    input_size: tuple[int, ...]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def train_loader(self) -> Any:
        return self.loaders["train"]

    @property
    def eval_loader(self) -> Any:
        return self.loaders["eval"]


def run_data(dataset: str, recipe: Recipe, seed: int, device: torch.device, data_root: str | Path | None,
             plan: SplitPlan = Whole(), evaluate: str | None = "test", window: int | None = None) -> RunData:
    """`window`: a language model's tokens per window (its spec's `seq_len`), for text datasets."""
    from nas_impl.data.registry import TEXT_DATASETS

    if dataset in TEXT_DATASETS:
        return _text_data(dataset, recipe, device, data_root, plan, evaluate, window)
    source = FolderSource(data_root) if dataset == "imagenet" else TensorSource(dataset, data_root, device)
    record: dict[str, Any] = {"dataset": dataset}
    needs_train = not isinstance(plan, EvaluationOnly) or evaluate == "train"
    pool = source.training_pool(recipe.train_subset, record) if needs_train else None
    loaders: dict[str, Any] = {}
    if isinstance(plan, Whole):
        loaders["train"] = source.training_loader(pool, recipe, seed)
    elif isinstance(plan, Halves):
        from nas_impl import data

        first, second = data.split_halves(source.labels(pool), seed=plan.split_seed)
        record["search_split"] = data.SplitRecord.create(
            dataset, plan.split_seed, {"weights": len(first), "architecture": len(second)}, first, second).to_dict()
        loaders["weights"] = source.training_loader(pool[first], recipe, seed, plan.channels_last)
        loaders["architecture"] = source.training_loader(pool[second], recipe, seed + 1, plan.channels_last)
    elif isinstance(plan, Holdout):
        train_idx, scored = _holdout(dataset, source.labels(pool), plan, record)
        loaders["train"] = source.training_loader(pool[train_idx], recipe, seed, plan.channels_last_train)
        loaders["scored"] = source.fixed_loader(pool[scored], plan.batch_size, seed, split="train",
                                                shuffled=plan.scored_shuffled)
    if evaluate is not None:
        loaders["eval"] = source.evaluation_loader(evaluate, pool, recipe, seed, record)
        record["eval_split"] = evaluate
    if "train" in loaders and isinstance(plan, Whole):
        record["train_images"] = len(pool)
    if "eval" in loaders:
        record["eval_images"] = source.size(loaders["eval"])
    return RunData(loaders, source.num_classes, source.input_size, record)


def _holdout(dataset: str, labels: torch.Tensor, plan: Holdout,
             record: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, scored held-out indices), class-balanced, seeded by `split_seed`."""
    from nas_impl import data

    size = round(plan.fraction * len(labels)) if plan.size is None else plan.size
    if plan.size is not None and not 0 < size < len(labels):
        raise NasReproError(f"search recipe key '{plan.keys[1]}' = {size}: must be below the {len(labels)} training "
                            "images (lower it, or raise 'train_subset')")
    train_idx, held_idx = data.holdout(labels, size, seed=plan.split_seed)
    if plan.scored > len(held_idx):
        scored_key, fraction_key = plan.keys
        raise NasReproError(f"search recipe key '{scored_key}' = {plan.scored} exceeds the {len(held_idx)} "
                            f"held-out images: lower it or raise '{fraction_key}'")
    scored = held_idx[data.subset(labels[held_idx], plan.scored, seed=plan.split_seed)]
    sizes = {plan.train_part: len(train_idx), "held_out": len(held_idx), "scored": len(scored)}
    record[plan.record_key] = data.SplitRecord.create(dataset, plan.split_seed, sizes, train_idx, held_idx,
                                                      scored).to_dict()
    return train_idx, scored


def subset_record(dataset: str, name: str, size: int, idx: torch.Tensor) -> dict[str, Any]:
    from nas_impl import data

    return data.SplitRecord.create(dataset, 0, {name: size}, idx).to_dict()


class TensorSource:
    """An image dataset held in memory: loaders batch, normalise and augment on the device."""

    def __init__(self, dataset: str, data_root: str | Path | None, device: torch.device) -> None:
        from nas_impl import data

        self.dataset, self.device = dataset, device
        self.ds = data.load_dataset(dataset, root=data_root)
        self.num_classes, self.input_size = self.ds.num_classes, self.ds.input_size

    def training_pool(self, train_subset: int | None, record: dict[str, Any]) -> torch.Tensor:
        from nas_impl import data

        if not train_subset:
            return torch.arange(len(self.ds.train_y))
        idx = data.subset(self.ds.train_y, train_subset, seed=0)
        record["train_subset"] = subset_record(self.dataset, "train_subset", train_subset, idx)
        return idx

    def labels(self, pool: torch.Tensor) -> torch.Tensor:
        return self.ds.train_y[pool]

    def _loader(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, **options: Any) -> Any:
        from nas_impl import data

        return data.TensorLoader(x, y, batch_size, mean=self.ds.mean, std=self.ds.std, device=self.device, **options)

    def training_loader(self, idx: torch.Tensor, recipe: Recipe, seed: int, channels_last: bool = True) -> Any:
        from nas_impl import data

        augment = data.Augmentation.from_dict(recipe.augment)
        augment.check_on_device(f"dataset '{self.dataset}'")  # color_jitter, lighting: ImageNet only
        return self._loader(self.ds.train_x[idx], self.ds.train_y[idx], recipe.batch_size,
                            augment=augment, shuffle=True, drop_last=True, seed=seed, channels_last=channels_last)

    def fixed_loader(self, idx: torch.Tensor, batch_size: int, seed: int, split: str, shuffled: bool = False) -> Any:
        """The images as they are evaluated (no augmentation); `shuffled`: a new order every pass."""
        x, y = (self.ds.train_x, self.ds.train_y) if split == "train" else (self.ds.test_x, self.ds.test_y)
        return self._loader(x[idx], y[idx], batch_size, seed=seed, channels_last=True, shuffle=shuffled,
                            drop_last=shuffled)

    def evaluation_loader(self, split: str, pool: torch.Tensor | None, recipe: Recipe, seed: int,
                          record: dict[str, Any]) -> Any:
        from nas_impl import data

        if split == "train":
            return self.fixed_loader(pool, recipe.eval_batch_size, seed, "train")
        idx = torch.arange(len(self.ds.test_y))
        if recipe.test_subset:
            idx = data.subset(self.ds.test_y, recipe.test_subset, seed=0)
            record["test_subset"] = subset_record(self.dataset, "test_subset", recipe.test_subset, idx)
        return self.fixed_loader(idx, recipe.eval_batch_size, seed, "test")

    @staticmethod
    def size(loader: Any) -> int:
        return len(loader.labels)


class FolderSource:
    """ImageNet's class folders, read by worker processes (too large to hold on the device); the
    training split is only listed when a loader needs it."""

    def __init__(self, data_root: str | Path | None, workers: int = min(8, os.cpu_count() or 1)) -> None:
        from nas_impl import data

        self.folders = data.load_imagenet(data_root)
        self.workers = workers
        info = data.DATASET_INFO["imagenet"]
        self.num_classes, self.input_size = info.num_classes, info.input_size
        self._train = None

    def train_dataset(self) -> Any:
        if self._train is None:
            self._train = self.folders.train_dataset()
        return self._train

    def training_pool(self, train_subset: int | None, record: dict[str, Any]) -> torch.Tensor:
        from nas_impl import data

        labels = torch.as_tensor(self.train_dataset().targets)
        if not train_subset:
            return torch.arange(len(labels))
        idx = data.subset(labels, train_subset, seed=0)
        record["train_subset"] = subset_record("imagenet", "train_subset", len(idx), idx)
        return idx

    def labels(self, pool: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.train_dataset().targets)[pool]

    def _subset(self, dataset: Any, idx: torch.Tensor | None) -> Any:
        if idx is None or len(idx) == len(dataset):
            return dataset
        return torch.utils.data.Subset(dataset, idx.tolist())

    def training_set(self, recipe: Recipe) -> Any:
        """The training folder with the recipe's training transform (its `augment`: ColorJitter and
        Lighting where it sets them); it shares the listed files of `train_dataset`."""
        from nas_impl import data

        dataset = copy.copy(self.train_dataset())
        dataset.transform = self.folders.train_transform(data.Augmentation.from_dict(recipe.augment))
        return dataset

    def training_loader(self, idx: torch.Tensor, recipe: Recipe, seed: int, channels_last: bool = True) -> Any:
        from nas_impl import data

        return data.make_loader(self._subset(self.training_set(recipe), idx), recipe.batch_size, shuffle=True,
                                workers=self.workers, seed=seed, drop_last=True)

    def fixed_loader(self, idx: torch.Tensor, batch_size: int, seed: int, split: str, shuffled: bool = False) -> Any:
        from nas_impl import data

        base = self.folders.train_dataset(self.folders.val_transform()) if split == "train" else self.folders.val_dataset()
        return data.make_loader(self._subset(base, idx), batch_size, shuffle=shuffled, workers=self.workers, seed=seed,
                                drop_last=shuffled)

    def evaluation_loader(self, split: str, pool: torch.Tensor | None, recipe: Recipe, seed: int,
                          record: dict[str, Any]) -> Any:
        from nas_impl import data

        if split == "train":
            return self.fixed_loader(pool, recipe.eval_batch_size, seed, "train")
        evaluation = self.folders.val_dataset()
        idx = None
        if recipe.test_subset:
            idx = data.subset(evaluation.targets, recipe.test_subset, seed=0)
            record["test_subset"] = subset_record("imagenet", "test_subset", recipe.test_subset, idx)
        return data.make_loader(self._subset(evaluation, idx), recipe.eval_batch_size, shuffle=False,
                                workers=self.workers, seed=seed)

    @staticmethod
    def size(loader: Any) -> int:
        return len(loader.dataset)


def _text_data(dataset: str, recipe: Recipe, device: torch.device, data_root: str | Path | None, plan: SplitPlan,
               evaluate: str | None, window: int | None) -> RunData:
    """Penn Treebank: the training stream in `batch_size` columns and the evaluation split (test,
    valid or train) in `eval_batch_size` columns, both read in windows of `window` tokens (the
    language model's `seq_len`)."""
    from nas_impl import data
    from nas_impl.tasks.language import TokenWindows

    if not isinstance(plan, (Whole, EvaluationOnly)):
        raise NasReproError(f"dataset '{dataset}' is text: only whole-split training and evaluation are supported")
    if window is None:
        raise NasReproError(f"dataset '{dataset}' is text: train a language model on it (a spec with 'seq_len', "
                            "e.g. family lstm-lm)")
    ptb = data.load_ptb(data_root)
    streams = {"train": ptb.train, "valid": ptb.valid, "test": ptb.test}
    record: dict[str, Any] = {"dataset": dataset, "window": window}
    loaders: dict[str, Any] = {}
    if isinstance(plan, Whole):
        train = _prefix(streams["train"], recipe.train_subset, "train_subset", record)
        loaders["train"] = TokenWindows(train, recipe.batch_size, window, device, variable=recipe.variable_bptt)
        record["train_tokens"] = len(train)
    if evaluate is not None:
        tokens = streams[evaluate] if evaluate == "train" else _prefix(streams[evaluate], recipe.test_subset,
                                                                        "test_subset", record)
        loaders["eval"] = TokenWindows(tokens, recipe.eval_batch_size, window, device)
        record.update(eval_split=evaluate, eval_tokens=len(tokens))
    return RunData(loaders, len(ptb.vocab), (window,), record)


def _prefix(tokens: torch.Tensor, size: int | None, name: str, record: dict[str, Any]) -> torch.Tensor:
    """A text split's first `size` tokens (a recipe's train_subset / test_subset counts tokens)."""
    if not size or size >= len(tokens):
        return tokens
    record[name] = {"first_tokens": size}
    return tokens[:size]
