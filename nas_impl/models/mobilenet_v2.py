"""Family `mobilenet-v2`: Sandler et al. (2018) MobileNetV2, torchvision layout, and AutoSlim's
per-layer channel lists.

17 inverted-residual blocks, (expansion t, out c, repeats n, stride s) =
(1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1), between a 3x3
stem conv (32) and a 1x1 last conv (1280), then global average pool, dropout and FC.
`width_mult` scales every width, rounded to a multiple of 8 as in the original (the last conv
is never narrowed below 1280). Defaults equal torchvision's `mobilenet_v2` (3,504,872 params).

`stem: cifar` is the common CIFAR adaptation (also AutoSlim's cifar10 setting): stem stride 1
and the first strided block (the first 24-channel block) at stride 1, so a 32x32 input is
downsampled 3 times, to 4x4. `stem: imagenet` downsamples 5 times (224 -> 7).

`channels`, in AutoSlim's `channel_num_list` order (without its final class count):
[stem out, block 0 out, (expand, out) for blocks 1..16, last conv out] = 35 entries. Block 0
has no expansion conv (its depthwise conv runs on the stem's output). A block keeps its
identity shortcut when its stride is 1 and its input and output widths are equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn

from nas_impl.models.blocks import Activation, InvertedResidual, conv_bn
from nas_impl.models.registry import SpecModel, register_family, register_model
from nas_impl.models.spec import require, require_positive, require_positive_list

SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
NUM_CHANNELS = 2 + 2 * 16 + 1


def check_mobile_spec(spec: Any, expected: int, layout: str) -> None:
    """Shared checks of the mobile families' specs (num_classes, in_channels, width_mult,
    dropout, channels); `layout` names the `expected` entries of a channel list."""
    require_positive(num_classes=spec.num_classes, in_channels=spec.in_channels)
    require(spec.width_mult > 0, f"key 'width_mult' = {spec.width_mult}", "expected a number > 0")
    require(0 <= spec.dropout < 1, f"key 'dropout' = {spec.dropout}", "expected 0 <= dropout < 1")
    if spec.channels is not None:
        require(spec.width_mult == 1.0, "keys 'channels' and 'width_mult' both given",
                "give either a channel list or width_mult, not both")
        require(
            len(spec.channels) == expected,
            f"key 'channels' has {len(spec.channels)} entries",
            f"expected {expected}: {layout} (AutoSlim's channel_num_list without the class count)",
        )
    require_positive_list("channels", spec.channels)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of `divisor`, never going below 90% of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def default_channels(width_mult: float) -> list[int]:
    cin = make_divisible(32 * width_mult)
    channels = [cin]
    for t, c, n, _ in SETTINGS:
        cout = make_divisible(c * width_mult)
        for _ in range(n):
            channels += [cout] if t == 1 else [int(round(cin * t)), cout]
            cin = cout
    return channels + [make_divisible(1280 * max(1.0, width_mult))]


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


def block_strides(stem: str) -> list[int]:
    strides = [s if i == 0 else 1 for t, c, n, s in SETTINGS for i in range(n)]
    if stem == "cifar":
        strides[1] = 1
    return strides


@dataclass
class MobileNetV2Spec:
    num_classes: int = 1000
    in_channels: int = 3
    width_mult: float = 1.0
    stem: Literal["imagenet", "cifar"] = "imagenet"
    dropout: float = 0.2
    channels: list[int] | None = None

    def check(self) -> None:
        check_mobile_spec(self, NUM_CHANNELS, "stem out, block 0 out, (expand, out) for blocks 1-16, last conv out")


@register_family("mobilenet-v2")
class MobileNetV2(SpecModel):
    Spec = MobileNetV2Spec

    def __init__(self, spec: MobileNetV2Spec) -> None:
        super().__init__(spec)
        ch = spec.channels or default_channels(spec.width_mult)
        self.features = nn.Sequential(*inverted_residual_features(
            spec.in_channels, ch, 2 if spec.stem == "imagenet" else 1, block_strides(spec.stem), nn.ReLU6))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(spec.dropout), nn.Linear(ch[-1], spec.num_classes))
        mobile_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


register_model("mobilenetv2-imagenet", family="mobilenet-v2")
register_model("mobilenetv2-cifar", family="mobilenet-v2", stem="cifar", num_classes=10, dropout=0.0)
