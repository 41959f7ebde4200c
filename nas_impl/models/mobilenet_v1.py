"""Family `mobilenet-v1`: Howard et al. (2017) MobileNet, and AutoSlim's per-layer channel lists.

Layout (paper Table 1): 3x3 stem conv (32, stride 2) + BN + ReLU, then 13 depthwise-separable
blocks, each a 3x3 depthwise conv (carrying the stride) + BN + ReLU and a 1x1 pointwise conv +
BN + ReLU, with outputs 64, 128, 128, 256, 256, 512 (x6), 1024, 1024 and strides
1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1; then global average pool, dropout and FC. No separate
last conv. `width_mult` scales every width, rounded to a multiple of 8 (`make_divisible`, as
MobileNetV2). Defaults: 4,231,976 params (BN gamma/beta included), 569M MACs at 224x224.

`stem: cifar` (as `mobilenet-v2`): stem stride 1 and the first strided block (block 1) at
stride 1, so a 32x32 input is downsampled 3 times, to 4x4.

`channels`, in AutoSlim's `channel_num_list` order (`models/autoslim_mobilenet_v1.py`, without
its final class count): [stem out] + the 13 block outputs = 14 entries. A depthwise conv keeps
its input's width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from nas_impl.models.blocks import conv_bn
from nas_impl.models.mobile import MobileNet, MobileSpec, cifar_strides, make_divisible, stem_stride
from nas_impl.models.registry import register_family, register_model

OUT_CHANNELS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
NUM_CHANNELS = 1 + len(OUT_CHANNELS)


def default_channels(width_mult: float) -> list[int]:
    return [make_divisible(c * width_mult) for c in [32] + OUT_CHANNELS]


@dataclass
class MobileNetV1Spec(MobileSpec):
    dropout: float = 0.0
    num_channels = NUM_CHANNELS
    layout = "stem out, then the outputs of the 13 depthwise-separable blocks"
    default_channels = staticmethod(default_channels)


@register_family("mobilenet-v1")
class MobileNetV1(MobileNet):
    Spec = MobileNetV1Spec

    def __init__(self, spec: MobileNetV1Spec) -> None:
        super().__init__(spec)
        ch = spec.channel_list()
        cin = ch[0]
        layers: list[nn.Module] = [conv_bn(spec.in_channels, cin, 3, stem_stride(spec.stem))]
        for cout, stride in zip(ch[1:], cifar_strides(STRIDES, spec.stem)):
            layers.append(nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, cout, 1)))
            cin = cout
        self._finish(layers, cin)


register_model("mobilenetv1-imagenet", family="mobilenet-v1")
register_model("mobilenetv1-cifar", family="mobilenet-v1", stem="cifar", num_classes=10)
