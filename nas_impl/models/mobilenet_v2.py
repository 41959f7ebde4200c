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

import torch.nn as nn

from nas_impl.models.mobile import (MobileNet, MobileSpec, cifar_strides, inverted_residual_features,
                                    make_divisible, stem_stride)
from nas_impl.models.registry import register_family, register_model

SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
NUM_CHANNELS = 2 + 2 * 16 + 1


def default_channels(width_mult: float) -> list[int]:
    cin = make_divisible(32 * width_mult)
    channels = [cin]
    for t, c, n, _ in SETTINGS:
        cout = make_divisible(c * width_mult)
        for _ in range(n):
            channels += [cout] if t == 1 else [int(round(cin * t)), cout]
            cin = cout
    return channels + [make_divisible(1280 * max(1.0, width_mult))]


def block_strides(stem: str) -> list[int]:
    return cifar_strides([s if i == 0 else 1 for t, c, n, s in SETTINGS for i in range(n)], stem)


@dataclass
class MobileNetV2Spec(MobileSpec):
    num_channels = NUM_CHANNELS
    layout = "stem out, block 0 out, (expand, out) for blocks 1-16, last conv out"
    default_channels = staticmethod(default_channels)


@register_family("mobilenet-v2")
class MobileNetV2(MobileNet):
    Spec = MobileNetV2Spec

    def __init__(self, spec: MobileNetV2Spec) -> None:
        super().__init__(spec)
        ch = spec.channel_list()
        self._finish(inverted_residual_features(spec.in_channels, ch, stem_stride(spec.stem), block_strides(spec.stem),
                                                nn.ReLU6), ch[-1])


register_model("mobilenetv2-imagenet", family="mobilenet-v2")
register_model("mobilenetv2-cifar", family="mobilenet-v2", stem="cifar", num_classes=10, dropout=0.0)
