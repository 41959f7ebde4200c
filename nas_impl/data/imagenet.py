"""ImageNet (ILSVRC2012) from `train/` and `val/` class folders, read with torchvision ImageFolder.

`val/` must already be sorted into the 1000 wnid folders (as torchvision's ImageFolder expects).
torchvision is imported inside the functions that need it, so importing this package stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas_impl.data.augment_spec import Augmentation
from nas_impl.data.checksums import read_checksum_list, verify_file
from nas_impl.data.paths import resolve_data_root
from nas_impl.errors import DataError, describe_os_error

SUBDIR = "imagenet"
NUM_CLASSES = 1000
TRAIN_IMAGES = 1_281_167
VAL_IMAGES = 50_000
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CHECKSUM_FILE = "SHA256SUMS"
# AlexNet-style lighting noise (Krizhevsky et al., NIPS 2012, Sec. 4.1): the principal components
# of the ImageNet training pixels' RGB values (on the [0, 1] scale). These are the widely published
# figures of fb.resnet.torch (datasets/imagenet.lua), which the TAS (xautodl/datasets/
# get_dataset_with_transform.py) and AutoSlim (slimmable_networks utils/transforms.py) repositories
# use too. PCA_EIGVEC's columns are the eigenvectors, its rows the R, G, B channels.
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# The extensions torchvision's ImageFolder accepts, so our counts match what it will load.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
HOW_TO_GET = ("Download ILSVRC2012 from https://image-net.org, extract the training tarballs into "
              "train/<wnid>/ and sort the validation images into val/<wnid>/ (one folder per class).")


def lighting_shift(alpha: Any) -> tuple[float, float, float]:
    """What PCA lighting adds to each of R, G, B for the eigenvector weights `alpha` (three
    numbers): sum over k of eigvec[c][k] * alpha[k] * eigval[k]."""
    return tuple(sum(PCA_EIGVEC[c][k] * float(alpha[k]) * PCA_EIGVAL[k] for k in range(3)) for c in range(3))


def apply_lighting(image: Any, alpha: Any) -> Any:
    """A PIL RGB image with the lighting shift of `alpha` added to its 0-255 pixel values, clipped
    to [0, 255] and truncated to uint8, as the TAS and AutoSlim training transforms do (they apply
    it to the PIL image, before ToTensor)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(image, dtype=np.float64) + np.asarray(lighting_shift(alpha))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


class Lighting:
    """AlexNet-style PCA lighting noise on a PIL RGB image: the weights of the three eigenvectors
    are drawn from N(0, alphastd²) with torch's RNG (seeded per DataLoader worker) or `generator`.

    Note the scale, kept from the official code: its eigenvalues are for [0, 1] pixel values but it
    adds the shift to 0-255 values, so with alphastd 0.1 a shift is about 0.01 of a grey level, and
    truncating to uint8 lowers a channel by 1 when its shift is negative and leaves it otherwise."""

    def __init__(self, alphastd: float, generator: torch.Generator | None = None) -> None:
        self.alphastd, self.generator = alphastd, generator

    def __call__(self, image: Any) -> Any:
        if self.alphastd == 0:
            return image
        alpha = torch.randn(3, generator=self.generator) * self.alphastd
        return apply_lighting(image, alpha.tolist())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alphastd={self.alphastd})"


def _count_images(split_dir: Path) -> dict[str, int]:
    counts = {}
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if entry.is_dir():
            counts[entry.name] = sum(1 for f in os.scandir(entry.path)
                                     if f.name.lower().endswith(IMAGE_EXTENSIONS) and f.is_file())
    return counts


@dataclass(frozen=True)
class ImageNetFolders:
    """A verified ImageNet tree, and the standard datasets and transforms built on it."""

    root: Path
    classes: tuple[str, ...]
    train_size: int
    val_size: int
    image_size: int = 224
    resize_size: int = 256
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def val_dir(self) -> Path:
        return self.root / "val"

    def train_transform(self, augmentation: Augmentation | None = None) -> Callable[[Any], torch.Tensor]:
        """RandomResizedCrop(224) over `augmentation`'s crop_scale (torchvision's (0.08, 1) when
        unset), then its ColorJitter and Lighting where it sets them, then horizontal flip and
        normalise: the order of the TAS and AutoSlim training transforms
        (xautodl get_datasets('imagenet-1k'); slimmable_networks train.py data_transforms).
        The on-device keys (`crop_padding`, `flip`, `cutout`) do not apply here."""
        from torchvision import transforms

        augmentation = augmentation or Augmentation()
        photometric = []
        if augmentation.jitter_active:
            brightness, contrast, saturation, hue = augmentation.color_jitter
            photometric.append(transforms.ColorJitter(brightness, contrast, saturation, hue))
        if augmentation.lighting > 0:
            photometric.append(Lighting(augmentation.lighting))
        return transforms.Compose([
            transforms.RandomResizedCrop(self.image_size, scale=augmentation.crop_scale or (0.08, 1.0)),
            *photometric,
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(self.mean, self.std),
        ])

    def val_transform(self) -> Callable[[Any], torch.Tensor]:
        """Resize(256) + CenterCrop(224) + normalise."""
        from torchvision import transforms

        return transforms.Compose([
            transforms.Resize(self.resize_size),
            transforms.CenterCrop(self.image_size),
            transforms.ToTensor(),
            transforms.Normalize(self.mean, self.std),
        ])

    def train_dataset(self, transform: Callable[[Any], Any] | None = None) -> torch.utils.data.Dataset:
        from torchvision.datasets import ImageFolder

        return ImageFolder(str(self.train_dir), transform=transform or self.train_transform())

    def val_dataset(self, transform: Callable[[Any], Any] | None = None) -> torch.utils.data.Dataset:
        from torchvision.datasets import ImageFolder

        return ImageFolder(str(self.val_dir), transform=transform or self.val_transform())


def load_imagenet(
    root: str | os.PathLike[str] | None = None,
    *,
    num_classes: int = NUM_CLASSES,
    train_images: int = TRAIN_IMAGES,
    val_images: int = VAL_IMAGES,
    verify_manifest: bool = True,
) -> ImageNetFolders:
    """Check `<data root>/imagenet/{train,val}` and return its ImageNetFolders.

    Checks: both folders exist, hold the same class folders, `num_classes` of them, and
    `train_images` / `val_images` images; if `SHA256SUMS` (paths relative to the ImageNet folder)
    is present and `verify_manifest`, every listed file's sha256. The expected counts are
    parameters so that tests (or a deliberate subset) can use a smaller tree.
    """
    folder = resolve_data_root(root) / SUBDIR
    expected = f"{num_classes} class folders holding {train_images:,} train and {val_images:,} val images"
    counts = {}
    for split in ("train", "val"):
        split_dir = folder / split
        if not split_dir.is_dir():
            raise DataError(f"ImageNet: {split_dir}/ not found; expected {expected}. {HOW_TO_GET}")
        try:
            counts[split] = _count_images(split_dir)
        except OSError as err:
            where = err.filename or split_dir
            raise DataError(f"ImageNet: {where}: cannot be read ({describe_os_error(err)}); fix its permissions. "
                            f"{HOW_TO_GET}") from None
    train_classes, val_classes = sorted(counts["train"]), sorted(counts["val"])
    if train_classes != val_classes:
        only_train = sorted(set(train_classes) - set(val_classes))[:5]
        only_val = sorted(set(val_classes) - set(train_classes))[:5]
        raise DataError(f"ImageNet: class folders of {folder / 'train'} and {folder / 'val'} differ "
                        f"(only in train, first 5: {only_train}; only in val: {only_val}). {HOW_TO_GET}")
    for split, want in (("train", train_images), ("val", val_images)):
        found = sum(counts[split].values())
        if len(counts[split]) != num_classes or found != want:
            raise DataError(f"ImageNet: {folder / split} has {found:,} images in {len(counts[split])} class "
                            f"folders; expected {expected}. The copy is incomplete or not ILSVRC2012. "
                            f"{HOW_TO_GET}")
    manifest = folder / CHECKSUM_FILE
    if verify_manifest and manifest.is_file():
        for name, digest in read_checksum_list(manifest).items():
            verify_file(folder / name, digest, "sha256", f"Listed in {manifest}. {HOW_TO_GET}")
    return ImageNetFolders(folder, tuple(train_classes), train_images, val_images)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker's torch and `random` RNGs; numpy's must be seeded by hand.
    import numpy as np

    np.random.seed(torch.initial_seed() % 2**32)


def make_loader(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader whose order (and worker seeds) follow `seed`; pinned memory when CUDA is used."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        drop_last=drop_last,
    )
