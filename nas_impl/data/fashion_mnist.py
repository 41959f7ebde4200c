"""Fashion-MNIST from its four gzipped IDX files (Xiao et al., 2017)."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from nas_impl.data.checksums import file_digest
from nas_impl.data.image_dataset import ImageDataset, channel_stats
from nas_impl.data.paths import resolve_data_root
from nas_impl.errors import DataError, describe_os_error

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# md5 of the .gz files as published by zalandoresearch/fashion-mnist (and torchvision).
PUBLISHED_GZ_MD5 = {
    TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}
# md5 of the decompressed IDX files. Debian's dataset-fashion-mnist re-gzips the files (new gzip
# header), so their .gz md5s differ from the published ones while the content is identical.
PUBLISHED_RAW_MD5 = {
    TRAIN_IMAGES: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    TRAIN_LABELS: "9018921c3c673c538a1fc5bad174d6f9",
    TEST_IMAGES: "8181f5470baa50b63fa0f6fddb340f0a",
    TEST_LABELS: "15d484375f8d13e6eb1aabb0c3f46965",
}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
SUBDIR = "fashion-mnist"
HOW_TO_GET = ("Get the four .gz files from https://github.com/zalandoresearch/fashion-mnist (data/fashion/) "
              "into <data root>/fashion-mnist/, or install the Debian package dataset-fashion-mnist "
              f"(files in {SYSTEM_DIR}).")

_IDX_UBYTE = 0x08
_IMAGES_NDIM = 3
_LABELS_NDIM = 1


def find_fashion_mnist_dir(root: str | os.PathLike[str] | None = None, *, search_system: bool = True) -> Path:
    """`<root>/fashion-mnist` when it exists (it must then hold the four files: a folder of that name
    that cannot be used is an error, never silently replaced); only when it does not exist at all,
    the Debian package's folder."""
    local = resolve_data_root(root) / SUBDIR
    if local.exists() or local.is_symlink():
        _check_local_dir(local, search_system)
        return local
    candidates = [local] + ([SYSTEM_DIR] if search_system else [])
    if search_system and any((SYSTEM_DIR / name).is_file() for name in FILES):
        return SYSTEM_DIR
    looked = " and ".join(str(folder) for folder in candidates)
    raise DataError(f"Fashion-MNIST not found: looked for {TRAIN_IMAGES} etc. in {looked}. {HOW_TO_GET}")


def _local_fix(folder: Path, search_system: bool) -> str:
    get = f"Put the four .gz files from https://github.com/zalandoresearch/fashion-mnist (data/fashion/) into {folder}/"
    if not search_system:
        return f"{get}."
    return f"{get}, or remove {folder} to use the system copy in {SYSTEM_DIR} (Debian package dataset-fashion-mnist)."


def _check_local_dir(folder: Path, search_system: bool) -> None:
    """`<root>/fashion-mnist` exists: it must be a readable folder holding the four files."""
    fix = _local_fix(folder, search_system)
    if not folder.is_dir():
        what = "a broken link" if not folder.exists() else "a file, not a folder"
        raise DataError(f"{folder} is {what}: Fashion-MNIST is read from the folder {folder}/ when it exists. {fix}")
    try:
        names = set(os.listdir(folder))
    except OSError as err:
        raise DataError(f"{folder}: cannot list the Fashion-MNIST folder ({describe_os_error(err)}). "
                        f"Fix its permissions. {fix}") from None
    for name in FILES:
        if name in names and not (folder / name).is_file():
            raise DataError(f"{folder / name} is not a file (a folder?): it must be the gzipped IDX file. {fix}")
    missing = [name for name in FILES if name not in names]
    if len(missing) == len(FILES):
        raise DataError(f"{folder} exists but holds none of the Fashion-MNIST files ({', '.join(FILES)}). {fix}")
    if missing:
        listed = ", ".join(str(folder / name) for name in missing)
        raise DataError(f"{folder} is incomplete: {listed} not found. {fix}")


def verify_fashion_mnist_file(path: Path) -> None:
    """Accept the published .gz, or a re-compressed copy whose decompressed content matches."""
    name = path.name
    if not path.is_file():
        raise DataError(f"{path}: file not found. {HOW_TO_GET}")
    gz_md5 = file_digest(path, "md5")
    if gz_md5 == PUBLISHED_GZ_MD5[name]:
        return
    raw_md5 = file_digest(path, "md5", gunzip=True)
    if raw_md5 != PUBLISHED_RAW_MD5[name]:
        raise DataError(
            f"{path}: wrong md5 checksum: expected {PUBLISHED_GZ_MD5[name]} (published .gz) or decompressed "
            f"content {PUBLISHED_RAW_MD5[name]}, got {gz_md5} (.gz) and {raw_md5} (decompressed); "
            f"the file is corrupt or a different version. {HOW_TO_GET}"
        )


def read_idx(path: str | os.PathLike[str], ndim: int) -> torch.Tensor:
    """Read a gzipped IDX file of unsigned bytes with `ndim` dimensions into a uint8 tensor."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc}); download it again. {HOW_TO_GET}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({describe_os_error(err)}); fix its permissions. {HOW_TO_GET}") from None
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: truncated IDX file: {len(data)} bytes, shorter than the "
                        f"{header_size}-byte header. {HOW_TO_GET}")
    zero1, zero2, dtype_code, found_ndim = data[:4]
    if zero1 != 0 or zero2 != 0 or dtype_code != _IDX_UBYTE or found_ndim != ndim:
        raise DataError(f"{path}: bad IDX magic number {data[:4].hex()}: expected 000008{ndim:02x} "
                        f"(unsigned bytes, {ndim} dimensions). {HOW_TO_GET}")
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = math.prod(dims)
    found = len(data) - header_size
    if found != expected:
        state = "truncated" if found < expected else "malformed"
        raise DataError(f"{path}: {state} IDX file: header says shape {dims} = {expected} bytes of data, "
                        f"file holds {found}. {HOW_TO_GET}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)
    return torch.from_numpy(array.copy())


def load_fashion_mnist(root: str | os.PathLike[str] | None = None, *, search_system: bool = True) -> ImageDataset:
    """Fashion-MNIST as 1×28×28 uint8 images (60,000 train, 10,000 test), checksums verified."""
    folder = find_fashion_mnist_dir(root, search_system=search_system)
    for name in FILES:
        verify_fashion_mnist_file(folder / name)
    splits = []
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images = read_idx(folder / images_name, _IMAGES_NDIM)
        labels = read_idx(folder / labels_name, _LABELS_NDIM)
        if len(images) != len(labels):
            raise DataError(f"{folder / labels_name}: {len(labels)} labels for {len(images)} images "
                            f"in {images_name}. {HOW_TO_GET}")
        splits.append((images.unsqueeze(1), labels.to(torch.int64)))
    (train_x, train_y), (test_x, test_y) = splits
    mean, std = channel_stats(train_x)
    return ImageDataset("fashion-mnist", train_x, train_y, test_x, test_y,
                        num_classes=len(CLASSES), mean=mean, std=std, classes=CLASSES)
