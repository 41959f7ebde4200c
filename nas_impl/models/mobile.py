"""What the mobile families (`mobilenet-v1`, `mobilenet-v2`, `mnasnet`) share: their spec keys
and checks, width rounding, the inverted-residual body built from an AutoSlim channel list,
the average-pool + dropout + FC head, and torchvision's / AutoSlim's initialisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from nas_impl.models.blocks import Activation, InvertedResidual, conv_bn
from nas_impl.models.registry import SpecModel
from nas_impl.models.spec import CIFAR_SIZE, IMAGENET_SIZE, require, require_positive, require_positive_list


@dataclass
class MobileSpec:
    """The keys of every mobile family; a subclass sets `num_channels` and `layout` (what the
    entries of its channel list are) and may change a default."""

    num_classes: int = 1000
    in_channels: int = 3
    width_mult: float = 1.0
    stem: Literal["imagenet", "cifar"] = "imagenet"
    dropout: float = 0.2
    channels: list[int] | None = None

    num_channels = 0  # class attributes, not keys
    layout = ""
    default_channels = staticmethod(lambda width_mult: [])  # the family's channel list at a width

    @property
    def natural_input(self) -> tuple[int, int, int]:
        """`stem: cifar` networks are built for 32x32 images, the others for ImageNet's 224x224."""
        size = CIFAR_SIZE if self.stem == "cifar" else IMAGENET_SIZE
        return (self.in_channels, size, size)

    def channel_list(self) -> list[int]:
        """The channel list this spec builds: `channels`, or the family's default at `width_mult`."""
        return list(self.channels or self.default_channels(self.width_mult))

    def check(self) -> None:
        require_positive(num_classes=self.num_classes, in_channels=self.in_channels)
        require(self.width_mult > 0, f"key 'width_mult' = {self.width_mult}", "expected a number > 0")
        require(0 <= self.dropout < 1, f"key 'dropout' = {self.dropout}", "expected 0 <= dropout < 1")
        if self.channels is not None:
            require(self.width_mult == 1.0, "keys 'channels' and 'width_mult' both given",
                    "give either a channel list or width_mult, not both")
            require(
                len(self.channels) == self.num_channels,
                f"key 'channels' has {len(self.channels)} entries",
                f"expected {self.num_channels}: {self.layout} (AutoSlim's channel_num_list without the class count)",
            )
        require_positive_list("channels", self.channels)


def cifar_strides(strides: list[int], stem: str) -> list[int]:
    """`stem: cifar` also runs the first strided block (block 1 in every mobile family) at stride 1."""
    return [1 if stem == "cifar" and i == 1 else s for i, s in enumerate(strides)]


def stem_stride(stem: str) -> int:
    return 2 if stem == "imagenet" else 1


class MobileNet(SpecModel):
    """`features` -> global average pool -> dropout -> FC (`classifier`)."""

    def _finish(self, features: list[nn.Module], width: int) -> None:
        """Attach the body and the head (on `width` features), then initialise every layer."""
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(self.spec.dropout), nn.Linear(width, self.spec.num_classes))
        mobile_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of `divisor`, never going below 90% of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def inverted_residual_features(in_channels: int, channels: list[int], stem_stride: int, strides: list[int],
                               act: Activation, kernels: list[int] | None = None,
                               block0_residual: bool = True) -> list[nn.Module]:
    """The `features` layers of a MobileNetV2-style network from a channel list
    [stem out, block 0 out, (expand, out) for blocks 1.., last conv out] (shared with MNasNet).

    3x3 stem conv -> block 0 (depthwise on the stem width, no expansion conv) -> expanding
    blocks -> 1x1 last conv; `strides` / `kernels` per block (kernels default to 3).
    `block0_residual=False` drops block 0's identity shortcut (torchvision's MNasNet has none).
    """
    kernels = kernels or [3] * len(strides)
    cin = channels[0]
    layers: list[nn.Module] = [conv_bn(in_channels, cin, 3, stem_stride, act=act)]
    block0 = InvertedResidual(cin, cin, channels[1], strides[0], expand=False, kernel=kernels[0], act=act)
    block0.use_res_connect = block0.use_res_connect and block0_residual
    layers.append(block0)
    cin = channels[1]
    for i, (stride, kernel) in enumerate(zip(strides[1:], kernels[1:])):
        hidden, cout = channels[2 + 2 * i], channels[3 + 2 * i]
        layers.append(InvertedResidual(cin, hidden, cout, stride, expand=True, kernel=kernel, act=act))
        cin = cout
    layers.append(conv_bn(cin, channels[-1], 1, act=act))
    return layers


def mobile_init(model: nn.Module) -> None:
    """torchvision's / AutoSlim's initialisation of the mobile families: He-normal (fan-out)
    convs, BN = (1, 0), FC N(0, 0.01) with zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
