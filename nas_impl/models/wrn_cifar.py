"""Family `wrn-cifar`: Zagoruyko & Komodakis (2016) wide residual networks (pre-activation),
with per-layer `channels` for slimmed shapes (the AutoSlim TF2 re-implementation's WRN-40-4).

WRN-depth-k: 3x3 stem conv (16), three stages of n = (depth - 4) / 6 blocks at widths 16k,
32k, 64k (the first block of each stage at stride 1, 2, 2), then BN-ReLU, global average pool
and FC. A block is BN-ReLU-conv3x3(stride)-BN-ReLU-(dropout)-conv3x3; its shortcut is a 1x1 conv
(carrying the stride) on the pre-activated input when the stride or the width changes, the
identity of the raw input otherwise (as the reference WRN code). WRN-40-4: 8,949,210 params
(BN gamma/beta included), 1.30G MACs at 32x32.

`channels`: [stem out, (mid, out) for every block] = 1 + 2 * 3n entries; a block whose input
and output widths differ gets the 1x1 shortcut conv.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from nas_impl.models.blocks import kaiming_init
from nas_impl.models.registry import SpecModel, register_family, register_model
from nas_impl.models.spec import CIFAR_SIZE, require, require_positive, require_positive_list


class WideBasicBlock(nn.Module):
    """Pre-activation 3x3 -> 3x3 block; `widths` = (mid, out)."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.dropout(self.relu2(self.bn2(self.conv1(pre)))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


@dataclass
class WRNCifarSpec:
    depth: int = 40
    widen: int = 4
    num_classes: int = 10
    in_channels: int = 3
    dropout: float = 0.0
    channels: list[int] | None = None

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 4) // 6

    @property
    def stage_depths(self) -> list[int]:
        return [self.blocks_per_stage] * 3

    @property
    def natural_input(self) -> tuple[int, int, int]:
        return (self.in_channels, CIFAR_SIZE, CIFAR_SIZE)

    def channel_list(self) -> list[int]:
        """The channel list this spec builds: `channels`, or the default at `widen`."""
        return list(self.channels or default_channels(self.depth, self.widen))

    def check(self) -> None:
        require_positive(widen=self.widen, num_classes=self.num_classes, in_channels=self.in_channels)
        require(
            self.depth > 4 and (self.depth - 4) % 6 == 0,
            f"key 'depth' = {self.depth}",
            "expected depth with (depth - 4) % 6 == 0, e.g. 10, 16, 22, 28, 40",
        )
        require(0 <= self.dropout < 1, f"key 'dropout' = {self.dropout}", "expected 0 <= dropout < 1")
        if self.channels is not None:
            require(self.widen == 4, "keys 'channels' and 'widen' both given",
                    "give either a channel list or widen, not both")
            n = self.blocks_per_stage
            expected = 1 + 2 * 3 * n
            require(
                len(self.channels) == expected,
                f"key 'channels' has {len(self.channels)} entries",
                f"expected {expected} for depth {self.depth}: stem out, then (mid, out) for each of the "
                f"{3 * n} blocks",
            )
        require_positive_list("channels", self.channels)


def default_channels(depth: int, widen: int) -> list[int]:
    n = (depth - 4) // 6
    return [16] + [c for w in (16, 32, 64) for _ in range(n) for c in (w * widen, w * widen)]


@register_family("wrn-cifar")
class WRNCifar(SpecModel):
    Spec = WRNCifarSpec

    def __init__(self, spec: WRNCifarSpec) -> None:
        super().__init__(spec)
        ch = spec.channel_list()
        n = spec.blocks_per_stage
        self.conv1 = nn.Conv2d(spec.in_channels, ch[0], 3, 1, 1, bias=False)
        cin, pos = ch[0], 1
        for s, first_stride in enumerate((1, 2, 2)):
            blocks = []
            for b in range(n):
                mid, cout = ch[pos], ch[pos + 1]
                pos += 2
                blocks.append(WideBasicBlock(cin, mid, cout, first_stride if b == 0 else 1, spec.dropout))
                cin = cout
            self.add_module(f"block{s + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, spec.num_classes)
        kaiming_init(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.block3(self.block2(self.block1(x)))
        x = self.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


register_model("wrn40-4-cifar", family="wrn-cifar", depth=40, widen=4)
