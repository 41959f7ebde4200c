"""The channel space AutoSlim searches: a family's per-layer channel list, split into groups.

A configuration is a family channel list (the family's `channels` spec key, e.g. AutoSlim's
`channel_num_list` order for MobileNetV2). Entries joined by a residual addition must stay equal
(the official code excludes such `linked` layers from independent slimming), so the list is
partitioned into *groups* that move together. Each group may take a width from its grid: by
default its full (super-network) width minus whole steps of `channel_step` channels (the
official `slimming()` removes a fixed number of channels from a layer per step), or with
`divisions` the full width split into that many equal steps (the paper's 10 groups per layer),
never below `width_min` of the full width. A family may keep entries fixed at their full width
(MobileNetV2's last conv, which the official US-MobileNetV2 never slims): their grid is one width.

Which entry sets each conv's output width is found once, by narrowing each group in the plain
family network built on the meta device (no memory, no compute) and reading which convs follow,
by module name: the slimmable network is the plain one at full widths, so the names match.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from nas_impl.errors import NasReproError
from nas_impl.metrics import count_macs
from nas_impl.models import build_model, normalize_spec, parse_spec
from nas_impl.models.mnasnet import block_strides as mnasnet_strides
from nas_impl.models.mobile import make_divisible
from nas_impl.models.mobilenet_v2 import block_strides as mbv2_strides

Groups = list[list[int]]


# A residual block as (index of its input width, index of its output width, stride).
Block = tuple[int, int, int]


def _inverted_residual_blocks(strides: Callable[[str], list[int]]) -> Callable[[Any], list[Block]]:
    """[stem, block0 out, (expand, out) per block, last conv]: block i > 0 writes entry 2i + 1."""

    def blocks(spec: Any) -> list[Block]:
        out, cin = [], 0
        for i, stride in enumerate(strides(spec.stem)):
            cout = 1 if i == 0 else 2 * i + 1
            out.append((cin, cout, stride))
            cin = cout
        return out

    return blocks


def _resnet_blocks(spec: Any) -> list[Block]:
    """[stem, (widths of each block)...]; the first block of every stage after the first is strided."""
    per_block = 2 if getattr(spec, "block", "basic") == "basic" else 3
    out, cin, index = [], 0, 1
    for s, depth in enumerate(spec.stage_depths):
        for b in range(depth):
            cout = index + per_block - 1
            out.append((cin, cout, 2 if s > 0 and b == 0 else 1))
            cin, index = cout, index + per_block
    return out


@dataclass(frozen=True)
class FamilySpace:
    blocks: Callable[[Any], list[Block]]  # (of the parsed spec) blocks that may add their input to their output
    defaults: dict[str, Any]  # the width keys a channel list replaces, at the values it requires
    fixed_last: bool = False  # the last entry (a last conv) keeps its full width: not searched


SPACES: dict[str, FamilySpace] = {
    # The official US-MobileNetV2 builds its last conv with us=[True, False] (input slimmable, output not).
    "mobilenet-v2": FamilySpace(_inverted_residual_blocks(mbv2_strides), {"width_mult": 1.0}, fixed_last=True),
    "mnasnet": FamilySpace(_inverted_residual_blocks(mnasnet_strides), {"width_mult": 1.0}),
    "mobilenet-v1": FamilySpace(lambda spec: [], {"width_mult": 1.0}),
    "resnet-cifar": FamilySpace(_resnet_blocks, {"base_width": 16}),
    "resnet-imagenet": FamilySpace(_resnet_blocks, {"base_width": 64}),
    "wrn-cifar": FamilySpace(_resnet_blocks, {"widen": 4}),
}


def residual_groups(spec: dict[str, Any]) -> Groups:
    """Partition the channel list: entries an identity shortcut adds together (a stride-1 block
    whose input and output widths are equal at full size) form one group; the rest are alone."""
    full = full_channels(spec)
    parent = list(range(len(full)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for cin, cout, stride in family_space(spec).blocks(parse_spec(spec)):
        if stride == 1 and full[cin] == full[cout]:
            parent[root(cout)] = root(cin)
    groups: dict[int, list[int]] = {}
    for i in range(len(full)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=min)


def family_space(spec: dict[str, Any]) -> FamilySpace:
    family = spec["family"]
    if family not in SPACES:
        raise NasReproError(f"AutoSlim has no channel space for family '{family}'; "
                            f"supported: {', '.join(sorted(SPACES))}")
    return SPACES[family]


def full_channels(spec: dict[str, Any]) -> list[int]:
    family_space(spec)  # a family AutoSlim can slim
    return parse_spec(spec).channel_list()


def widen(spec: dict[str, Any], factor: float) -> dict[str, Any]:
    """The super-network, as an explicit channel list. A network given by `width_mult` is rebuilt at
    `width_mult * factor`, as the official US-Nets build theirs at the top of their width range: an
    expansion is t times the rounded block input (1.5x MNasNet: 6 x 64 = 384, not 240 x 1.5 = 360).
    Otherwise every entry times `factor`, rounded to a multiple of 8 as the families round widths
    (entries below 8 are only rounded up to an integer)."""
    spec = normalize_spec(spec)
    if "width_mult" in spec and spec.get("channels") is None:
        wide = full_channels({**spec, "width_mult": round(spec["width_mult"] * factor, 9)})
    else:
        wide = [make_divisible(c * factor) if c >= 8 else math.ceil(c * factor) for c in full_channels(spec)]
    return normalize_spec({**spec, **family_space(spec).defaults, "channels": wide})


def grid(full: int, width_min: float, channel_step: int = 8, divisions: int | None = None) -> list[int]:
    """Widths a group of full width `full` may take, ascending, none below width_min * full (nor 0):
    full, full - channel_step, full - 2 * channel_step, ...; or, with `divisions`,
    ceil(full * k / divisions) for k = 1..divisions."""
    lowest = max(1, math.ceil(width_min * full - 1e-9))
    if divisions is None:
        return list(range(full, lowest - 1, -channel_step))[::-1]
    return sorted({w for k in range(1, divisions + 1) if (w := math.ceil(full * k / divisions - 1e-9)) >= lowest})


class ChannelSpace:
    """Groups, width grids and the configurations of one super-network spec."""

    def __init__(self, spec: dict[str, Any], divisions: int | None = None, width_min: float = 0.15,
                 input_size: tuple[int, int, int] = (3, 32, 32), channel_step: int = 8) -> None:
        self.spec = normalize_spec(spec)
        self.full = full_channels(self.spec)
        if self.spec.get("shortcut") == "A":
            raise NasReproError("AutoSlim needs slimmable shortcuts: the zero-padding shortcut 'A' is not; "
                                "use 'shortcut: B' (a 1x1 conv) in the base network's spec")
        self.groups = residual_groups(self.spec)
        fixed = {len(self.full) - 1} if family_space(self.spec).fixed_last else set()
        self.grids = [[self.full[g[0]]] if fixed.intersection(g) else
                      grid(self.full[g[0]], width_min, channel_step, divisions) for g in self.groups]
        self.input_size = input_size

    @classmethod
    def for_search(cls, base_spec: dict[str, Any], settings: Any,
                   input_size: tuple[int, int, int] = (3, 32, 32)) -> ChannelSpace:
        """The super-network's space as a search recipe's AutoSlim settings configure it."""
        return cls(widen(base_spec, settings.supernet_width), settings.divisions, settings.width_min, input_size,
                   settings.channel_step)

    # A configuration is held as one grid index per group.
    def largest(self) -> tuple[int, ...]:
        return tuple(len(g) - 1 for g in self.grids)

    def smallest(self) -> tuple[int, ...]:
        return tuple(0 for _ in self.grids)

    def random(self, generator: torch.Generator) -> tuple[int, ...]:
        """Every group at an independent uniformly drawn width (AutoSlim's non-uniform sampling)."""
        return tuple(int(torch.randint(len(g), (1,), generator=generator)) for g in self.grids)

    def channels(self, config: tuple[int, ...]) -> list[int]:
        out = list(self.full)
        for group, widths, k in zip(self.groups, self.grids, config):
            for i in group:
                out[i] = widths[k]
        return out

    def spec_of(self, config: tuple[int, ...]) -> dict[str, Any]:
        return normalize_spec({**self.spec, "channels": self.channels(config)})

    def conv_widths(self, config: tuple[int, ...]) -> dict[str, int]:
        """Output width of every (non-depthwise) conv of the super-network at `config`."""
        return {name: self.grids[g][config[g]] for name, g in self.conv_groups.items()}

    @functools.cached_property
    def conv_groups(self) -> dict[str, int]:
        """Which group sets each conv's output width, found once by narrowing each group in turn in the
        plain network (built on the meta device) and seeing which convs follow."""
        full = _plain_conv_widths(meta_model(self.spec))
        owner: dict[str, int] = {}
        for g, group in enumerate(self.groups):
            probe = list(self.full)
            for i in group:
                probe[i] = self.full[i] - 1 if self.full[i] > 1 else 2
            widths = _plain_conv_widths(meta_model({**self.spec, "channels": probe}))
            owner.update({name: g for name, width in widths.items() if name in full and width != full[name]})
        unowned = sorted(set(full) - set(owner))
        if unowned:
            raise NasReproError(f"AutoSlim cannot tell which channel entry sets the width of conv(s) {unowned} "
                                f"of family '{self.spec['family']}'")
        return owner

    def macs(self, config: tuple[int, ...]) -> int:
        return _macs(_freeze(self.spec_of(config)), self.input_size)


def _freeze(spec: dict[str, Any]) -> tuple:
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(spec.items()))


def _thaw(frozen: tuple) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in frozen}


def meta_model(spec: dict[str, Any]) -> nn.Module:
    with torch.device("meta"):
        return build_model(spec)


def _plain_conv_widths(model: nn.Module) -> dict[str, int]:
    return {name: m.out_channels for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and not (m.groups > 1 and m.groups == m.in_channels == m.out_channels)}


@functools.lru_cache(maxsize=4096)
def _macs(frozen: tuple, input_size: tuple[int, int, int]) -> int:
    return count_macs(meta_model(_thaw(frozen)), input_size)
