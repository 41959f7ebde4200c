"""Generic sharded `.npz` image-classification datasets.

A directory of `*.npz` shards, each holding `x_train`/`y_train` and/or `x_test`/`y_test`:
uint8 images (N×H×W×C, or N×H×W for grayscale) and integer labels. Shards are concatenated in
sorted file-name order. A `SHA256SUMS` file in the directory (sha256sum format) and/or an
`expected_sha256` argument pin the shards; with either, every shard must be listed.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from nas_impl.data.checksums import read_checksum_list, verify_file
from nas_impl.data.image_dataset import ImageDataset, channel_stats
from nas_impl.errors import DataError, describe_os_error

CHECKSUM_FILE = "SHA256SUMS"
SPLITS = ("train", "test")


def _checksum_table(directory: Path, expected_sha256: Mapping[str, str] | None) -> dict[str, str]:
    table: dict[str, str] = {}
    sums = directory / CHECKSUM_FILE
    if sums.is_file():
        table.update(read_checksum_list(sums))
    for name, digest in (expected_sha256 or {}).items():
        if table.get(name, digest.lower()) != digest.lower():
            raise DataError(f"{sums}: lists sha256 {table[name]} for {name}, but the pinned value is "
                            f"{digest.lower()}; the directory holds a different version of the dataset")
        table[name] = digest.lower()
    return table


def _verify_shards(directory: Path, shards: Sequence[Path], table: Mapping[str, str], how_to_get: str) -> None:
    if not table:
        return
    for name, digest in sorted(table.items()):
        verify_file(directory / name, digest, "sha256", how_to_get)
    unlisted = [shard.name for shard in shards if shard.name not in table]
    if unlisted:
        raise DataError(f"{directory}: shards {unlisted} have no pinned sha256 (not in {CHECKSUM_FILE} or "
                        f"the expected checksums); remove them or add them to {directory / CHECKSUM_FILE}")


def _load_shard(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except OSError as err:
        if isinstance(err, (PermissionError, IsADirectoryError)):
            raise DataError(f"{path}: cannot be read ({describe_os_error(err)}); fix the path or its "
                            "permissions") from None
        raise DataError(f"{path}: not a readable .npz file ({err}); regenerate or re-download it") from None
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc}); regenerate or re-download it") from None


def _split_arrays(path: Path, arrays: Mapping[str, np.ndarray], split: str):
    x_key, y_key = f"x_{split}", f"y_{split}"
    if x_key not in arrays and y_key not in arrays:
        return None
    for present, absent in ((x_key, y_key), (y_key, x_key)):
        if present in arrays and absent not in arrays:
            raise DataError(f"{path}: has {present!r} but is missing key {absent!r} "
                            f"(keys found: {sorted(arrays)})")
    x, y = arrays[x_key], arrays[y_key]
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise DataError(f"{path}: {x_key!r} must be uint8 N×H×W×C or N×H×W images, "
                        f"found {x.dtype} with shape {x.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise DataError(f"{path}: {y_key!r} must be a 1-D integer array, found {y.dtype} with shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{path}: {x_key!r} holds {len(x)} images but {y_key!r} holds {len(y)} labels")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: {y_key!r} contains negative labels (min {y.min()})")
    images = torch.from_numpy(x[..., None] if x.ndim == 3 else x).permute(0, 3, 1, 2)
    return images, torch.from_numpy(y.astype(np.int64))


def load_npz_dataset(
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    expected_sha256: Mapping[str, str] | None = None,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    how_to_get: str = "",
) -> ImageDataset:
    """Read every `*.npz` shard in `directory` into one ImageDataset (verified when pinned).

    `num_classes` defaults to len(classes), else the largest label + 1; `mean`/`std` default to
    the training images' statistics.
    """
    directory = Path(directory)
    name = name or f"npz:{directory}"
    hint = f" {how_to_get}" if how_to_get else ""
    if not directory.is_dir():
        state = "is a file, not a folder" if directory.exists() else "not found"
        raise DataError(f"dataset {name}: directory {directory} {state}.{hint}")
    try:
        os.listdir(directory)
    except OSError as err:
        raise DataError(f"dataset {name}: cannot list {directory} ({describe_os_error(err)}); fix its "
                        f"permissions.{hint}") from None
    shards = sorted(directory.glob("*.npz"))
    table = _checksum_table(directory, expected_sha256)
    if not shards and not table:
        raise DataError(f"dataset {name}: no *.npz shards in {directory}.{hint}")
    _verify_shards(directory, shards, table, how_to_get)

    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {split: [] for split in SPLITS}
    for shard in shards:
        arrays = _load_shard(shard)
        found = {split: _split_arrays(shard, arrays, split) for split in SPLITS}
        if not any(found.values()):
            raise DataError(f"{shard}: missing keys: expected x_train/y_train and/or x_test/y_test, "
                            f"found {sorted(arrays)}")
        for split, pair in found.items():
            if pair is not None:
                parts[split].append((pair[0], pair[1]))

    merged = {}
    for split in SPLITS:
        if not parts[split]:
            raise DataError(f"dataset {name}: no shard in {directory} holds x_{split}/y_{split}.{hint}")
        shapes = {tuple(x.shape[1:]) for x, _ in parts[split]}
        if len(shapes) > 1:
            raise DataError(f"dataset {name}: shards in {directory} have different image shapes {sorted(shapes)} "
                            f"(as C×H×W) in the {split} split")
        # One contiguous N×C×H×W copy of the NHWC shards.
        merged[split] = (torch.cat([x for x, _ in parts[split]]).contiguous(),
                         torch.cat([y for _, y in parts[split]]))

    (train_x, train_y), (test_x, test_y) = merged["train"], merged["test"]
    if num_classes is None:
        num_classes = len(classes) if classes is not None else int(max(train_y.max(), test_y.max())) + 1
    class_names = tuple(classes) if classes is not None else tuple(str(i) for i in range(num_classes))
    if mean is None or std is None:
        data_mean, data_std = channel_stats(train_x)
        mean = data_mean if mean is None else mean
        std = data_std if std is None else std
    return ImageDataset(name, train_x, train_y, test_x, test_y, num_classes=num_classes,
                        mean=tuple(mean), std=tuple(std), classes=class_names)
