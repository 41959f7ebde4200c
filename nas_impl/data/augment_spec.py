"""What a recipe's `augment` mapping may hold, checked without importing torch (recipes are read
by workflow jobs that never touch a tensor).

Two pipelines apply it. Small image datasets are augmented on the device as whole uint8 batches
(`crop_padding`, `flip`, `cutout`; `nas_impl/data/augment.py`). ImageNet is read from its folders
by worker processes with torchvision transforms (`nas_impl/data/imagenet.py`): RandomResizedCrop
(its area range set by `crop_scale`) and a horizontal flip always, plus the two photometric keys
`color_jitter` and `lighting`; only that pipeline applies these three keys (an on-device loader
refuses them rather than ignore them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nas_impl.errors import SpecError


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _scale_range(value: Any) -> bool:
    return (value is None or isinstance(value, (list, tuple)) and len(value) == 2
            and all(_number(v) for v in value) and 0 < value[0] <= value[1] <= 1)


def _jitter(value: Any) -> bool:
    return (value is None or isinstance(value, (list, tuple)) and len(value) == 4
            and all(_number(v) and v >= 0 for v in value) and value[3] <= 0.5)


# The keys of a recipe's `augment` mapping: (test of a value, what a value must be).
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "crop_padding": (_count, "a non-negative integer (pixels of zero padding; 0 disables the crop)"),
    "flip": (lambda v: isinstance(v, bool), "true or false"),
    "cutout": (_count, "a non-negative integer (side of the square; 0 disables cutout)"),
    "crop_scale": (_scale_range, "a list [min, max] with 0 < min <= max <= 1 (RandomResizedCrop's range of the "
                                 "crop's share of the image area, e.g. [0.25, 1.0]); null for torchvision's "
                                 "[0.08, 1.0]"),
    "color_jitter": (_jitter, "a list of four non-negative numbers [brightness, contrast, saturation, hue], "
                              "hue at most 0.5 (torchvision ColorJitter's factors), e.g. [0.4, 0.4, 0.4, 0.2]; "
                              "null for none"),
    "lighting": (lambda v: _number(v) and v >= 0, "a non-negative number (the standard deviation of AlexNet's "
                                                  "PCA lighting noise, e.g. 0.1; 0 disables it)"),
}


def augmentation_problem(values: Any) -> str | None:
    """What is wrong with a recipe's `augment` value, or None when it is valid (None: no augmentation)."""
    if values is None:
        return None
    if not isinstance(values, Mapping):
        return f"must be a mapping of {', '.join(_KINDS)}, e.g. {{crop_padding: 4, flip: true}}"
    unknown = sorted(set(values) - set(_KINDS))
    if unknown:
        return f"unknown key(s) {unknown}; known keys: {', '.join(_KINDS)}"
    for key, value in values.items():
        fits, expected = _KINDS[key]
        if not fits(value):
            return f"key '{key}' = {value!r} must be {expected}"
    return None


@dataclass(frozen=True)
class Augmentation:
    """CIFAR-style augmentation: `crop_padding`-pixel zero-padded random crop, horizontal flip
    with probability 1/2, and cutout of a `cutout`×`cutout` square (0 disables); and, for ImageNet
    only, `crop_scale` (RandomResizedCrop's area range; None: torchvision's (0.08, 1)),
    `color_jitter` (torchvision ColorJitter's brightness, contrast, saturation, hue) and
    `lighting` (AlexNet-style PCA lighting noise of this standard deviation; 0 disables)."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0
    crop_scale: tuple[float, float] | None = None
    color_jitter: tuple[float, float, float, float] | None = None
    lighting: float = 0.0

    def __post_init__(self) -> None:
        problem = augmentation_problem(self.to_dict())
        if problem is not None:
            raise SpecError(f"augmentation: {problem}")
        for key in ("crop_scale", "color_jitter"):  # a list from YAML: stored as a tuple, so the value is hashable
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Augmentation:
        """From a recipe's `augment` mapping (None: no augmentation); a SpecError names the bad key."""
        problem = augmentation_problem(values)
        if problem is not None:
            raise SpecError(f"augmentation: {problem}")
        return cls(**(values or {}))

    def to_dict(self) -> dict[str, Any]:
        jitter = None if self.color_jitter is None else list(self.color_jitter)
        values = {"crop_padding": self.crop_padding, "flip": self.flip, "cutout": self.cutout,
                  "color_jitter": jitter, "lighting": self.lighting}
        if self.crop_scale is not None:  # left out when unset, so recipes without it keep their identity
            values["crop_scale"] = list(self.crop_scale)
        return values

    @property
    def jitter_active(self) -> bool:
        return self.color_jitter is not None and any(self.color_jitter)

    @property
    def imagenet_only_keys(self) -> list[str]:
        """The ImageNet-only keys this augmentation sets (to a value that does something)."""
        active = (("crop_scale", self.crop_scale is not None), ("color_jitter", self.jitter_active),
                  ("lighting", self.lighting > 0))
        return [key for key, on in active if on]

    def check_on_device(self, what: str) -> None:
        """A SpecError when this augmentation sets a key that the on-device pipeline cannot apply
        (it would otherwise be ignored silently); `what` names the data, e.g. "dataset 'cifar10'"."""
        keys = self.imagenet_only_keys
        if keys:
            raise SpecError(imagenet_only_message(keys, what))

    @property
    def is_identity(self) -> bool:
        return self.crop_padding == 0 and not self.flip and self.cutout == 0 and not self.imagenet_only_keys


def imagenet_only_message(keys: list[str], what: str) -> str:
    """Why `keys` (ImageNet-only augment keys) cannot be used for `what` (e.g. "dataset 'cifar10'")."""
    names = " and ".join(f"'augment.{key}'" for key in keys)
    several = len(keys) > 1
    return (f"recipe key{'s' if several else ''} {names} appl{'y' if several else 'ies'} to ImageNet only "
            f"(the folder pipeline's torchvision transforms); {what} is augmented on the device with "
            f"crop_padding, flip and cutout only: remove {'them' if several else 'it'} from this recipe's augment")


def imagenet_only_keys(values: Mapping[str, Any] | None) -> list[str]:
    """The ImageNet-only keys a valid recipe `augment` mapping sets (torch-free, for manifest checks)."""
    return Augmentation.from_dict(values).imagenet_only_keys
