"""CIFAR-10 and CIFAR-100, official "python version": the tarball or its extracted folder.

The batches are pickles; they are unpickled only after their md5 (or the tarball's) matched the
published value, so only the official files are ever unpickled.
"""

from __future__ import annotations

import os
import pickle
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas_impl.data.checksums import verify_file
from nas_impl.data.image_dataset import ImageDataset, channel_stats
from nas_impl.data.paths import resolve_data_root
from nas_impl.errors import DataError, describe_os_error

_SIDE = 32
_PIXELS = 3 * _SIDE * _SIDE


@dataclass(frozen=True)
class CifarLayout:
    """File names, published md5s (as torchvision lists them) and pickle keys of one CIFAR release."""

    name: str
    archive: str
    folder: str
    md5: Mapping[str, str]  # archive name and member names -> md5
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    meta_member: str
    names_key: bytes
    labels_key: bytes
    url: str

    def how_to_get(self, root: Path) -> str:
        return (f"Download {self.url} (md5 {self.md5[self.archive]}) into {root}/ "
                f"(or extract it there, giving {root / self.folder}/).")


CIFAR10 = CifarLayout(
    name="cifar10",
    archive="cifar-10-python.tar.gz",
    folder="cifar-10-batches-py",
    md5={
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    train_members=("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
    test_members=("test_batch",),
    meta_member="batches.meta",
    names_key=b"label_names",
    labels_key=b"labels",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)

CIFAR100 = CifarLayout(
    name="cifar100",
    archive="cifar-100-python.tar.gz",
    folder="cifar-100-python",
    md5={
        "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
    train_members=("train",),
    test_members=("test",),
    meta_member="meta",
    names_key=b"fine_label_names",
    labels_key=b"fine_labels",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
)


def _members(layout: CifarLayout) -> tuple[str, ...]:
    return (*layout.train_members, *layout.test_members, layout.meta_member)


def _read_extracted(layout: CifarLayout, folder: Path, md5: Mapping[str, str], how_to_get: str) -> dict[str, Any]:
    try:
        os.listdir(folder)
    except OSError as err:
        raise DataError(f"{folder}: cannot list the folder ({describe_os_error(err)}); fix its permissions. "
                        f"{how_to_get}") from None
    missing = [member for member in _members(layout) if not (folder / member).exists()]
    if missing:
        raise DataError(f"{folder}: files {missing} not found. {how_to_get}")
    pickles = {}
    for member in _members(layout):
        path = folder / member
        verify_file(path, md5[member], "md5", how_to_get)  # also: a folder or an unreadable file
        try:
            with open(path, "rb") as stream:
                pickles[member] = _unpickle(stream, path)
        except OSError as err:
            raise DataError(f"{path}: cannot be read ({describe_os_error(err)}); fix its permissions") from None
    return pickles


def _read_archive(layout: CifarLayout, archive: Path, md5: Mapping[str, str], how_to_get: str) -> dict[str, Any]:
    verify_file(archive, md5[layout.archive], "md5", how_to_get)
    wanted = {f"{layout.folder}/{member}": member for member in _members(layout)}
    pickles = {}
    try:
        # Stream mode reads the gzip once, front to back; random access would re-decompress per member.
        with tarfile.open(archive, "r|gz") as tar:
            for info in tar:
                member = wanted.get(info.name)
                stream = tar.extractfile(info) if member is not None and info.isfile() else None
                if stream is not None:
                    pickles[member] = _unpickle(stream, archive / info.name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot read the tar archive ({exc}). {how_to_get}") from None
    missing = [name for name, member in wanted.items() if member not in pickles]
    if missing:
        raise DataError(f"{archive}: members {missing} are missing from the archive. {how_to_get}")
    return pickles


def _unpickle(stream: Any, source: Path) -> Any:
    try:
        return pickle.load(stream, encoding="bytes")
    except Exception as exc:  # any unpickling failure means a broken file
        raise DataError(f"{source}: not a CIFAR pickle ({type(exc).__name__}: {exc})") from None


def _batch_arrays(layout: CifarLayout, batch: Any, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, dict) or b"data" not in batch or layout.labels_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{source}: expected a dict with keys b'data' and {layout.labels_key!r}, found {keys}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[layout.labels_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS or len(labels) != len(data):
        raise DataError(f"{source}: expected uint8 data of shape (N, {_PIXELS}) and N labels, "
                        f"found {data.dtype} {data.shape} and {len(labels)} labels")
    images = torch.from_numpy(data.reshape(-1, 3, _SIDE, _SIDE).copy())
    return images, torch.from_numpy(labels.astype(np.int64))


def _concat(layout: CifarLayout, pickles: Mapping[str, Any], members: tuple[str, ...], origin: Path):
    parts = [_batch_arrays(layout, pickles[member], f"{origin}:{member}") for member in members]
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def load_cifar(layout: CifarLayout, root: str | os.PathLike[str] | None = None, *,
               md5: Mapping[str, str] | None = None) -> ImageDataset:
    """Load CIFAR from `<root>/<folder>/` if present, else from `<root>/<archive>`.

    `md5` overrides the published checksum table (keys: the archive name and member names).
    """
    root = resolve_data_root(root)
    table = {**layout.md5, **(md5 or {})}
    how_to_get = layout.how_to_get(root)
    folder, archive = root / layout.folder, root / layout.archive
    if folder.is_dir():
        pickles, origin = _read_extracted(layout, folder, table, how_to_get), folder
    elif archive.exists():  # a folder of that name, or an unreadable file, fails in verify_file naming it
        pickles, origin = _read_archive(layout, archive, table, how_to_get), archive
    else:
        raise DataError(f"{layout.name}: neither {archive} nor {folder}/ exists. {how_to_get}")

    meta = pickles[layout.meta_member]
    if not isinstance(meta, dict) or layout.names_key not in meta:
        raise DataError(f"{origin}:{layout.meta_member}: no {layout.names_key!r} entry. {how_to_get}")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[layout.names_key])
    train_x, train_y = _concat(layout, pickles, layout.train_members, origin)
    test_x, test_y = _concat(layout, pickles, layout.test_members, origin)
    mean, std = channel_stats(train_x)
    return ImageDataset(layout.name, train_x, train_y, test_x, test_y,
                        num_classes=len(classes), mean=mean, std=std, classes=classes)


def load_cifar10(root: str | os.PathLike[str] | None = None, *, md5: Mapping[str, str] | None = None) -> ImageDataset:
    return load_cifar(CIFAR10, root, md5=md5)


def load_cifar100(root: str | os.PathLike[str] | None = None, *, md5: Mapping[str, str] | None = None) -> ImageDataset:
    return load_cifar(CIFAR100, root, md5=md5)

