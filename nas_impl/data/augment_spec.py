"""What a recipe's `augment` mapping may hold, checked without importing torch (recipes are read
by workflow jobs that never touch a tensor)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from nas_impl.errors import SpecError


# The keys of a recipe's `augment` mapping: (type, what a value must be).
_KINDS: dict[str, tuple[type, str]] = {
    "crop_padding": (int, "a non-negative integer (pixels of zero padding; 0 disables the crop)"),
    "flip": (bool, "true or false"),
    "cutout": (int, "a non-negative integer (side of the square; 0 disables cutout)"),
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
        kind, expected = _KINDS[key]
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
            return f"key '{key}' = {value!r} must be {expected}"
    return None


@dataclass(frozen=True)
class Augmentation:
    """CIFAR-style augmentation: `crop_padding`-pixel zero-padded random crop, horizontal flip
    with probability 1/2, and cutout of a `cutout`×`cutout` square (0 disables)."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or self.cutout < 0:
            raise SpecError(f"augmentation: crop_padding and cutout must be >= 0, got {self}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Augmentation:
        """From a recipe's `augment` mapping (None: no augmentation); a SpecError names the bad key."""
        problem = augmentation_problem(values)
        if problem is not None:
            raise SpecError(f"augmentation: {problem}")
        return cls(**(values or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_identity(self) -> bool:
        return self.crop_padding == 0 and not self.flip and self.cutout == 0
