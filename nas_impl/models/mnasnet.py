"""Family `mnasnet`: MNasNet-B1 (Tan et al. 2019) in torchvision's `mnasnet1_0` layout, and
AutoSlim's per-layer channel lists.

3x3 stem conv (32, stride 2) + BN + ReLU; block 0 = 3x3 depthwise conv on the stem width + BN +
ReLU, then 1x1 conv to 16 + BN (no expansion conv, no shortcut); then 16 inverted-residual
blocks, (expansion t, out c, repeats n, stride s, kernel k) = (3,24,3,2,3) (3,40,3,2,5)
(6,80,3,2,5) (6,96,2,1,3) (6,192,4,2,5) (6,320,1,1,3); a 1x1 last conv (1280) + BN + ReLU, global
average pool, dropout and FC. ReLU activations throughout; a block has an identity shortcut
when its stride is 1 and its input and output widths are equal. Defaults have torchvision's
`mnasnet1_0` parameter count (4,383,312) and 314.4M MACs at 224x224 (the paper: 315M / 317M);
torchvision's weights, taken in order, load and give the same outputs.
`width_mult` scales every width as in `mobilenet-v2` (multiples of 8; the last conv is never
narrowed below 1280).

`stem: cifar` (as `mobilenet-v2`): stem stride 1 and the first strided block (block 1) at
stride 1, so a 32x32 input is downsampled 3 times, to 4x4.

`channels`: the same order as `mobilenet-v2` and AutoSlim's `channel_num_list`
(`models/autoslim_mnasnet.py`, without its final class count): [stem out, block 0 out,
(expand, out) for blocks 1..16, last conv out] = 35 entries. AutoSlim's own MNasNet uses ReLU6
and would give block 0 a shortcut if the stem and block 0 widths were equal; neither changes
its parameter or MAC counts, and no released list has equal widths there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from nas_impl.models.mobile import (MobileNet, MobileSpec, cifar_strides, inverted_residual_features,
                                    make_divisible, stem_stride)
from nas_impl.models.registry import register_family, register_model

# (expansion t, out c, repeats n, stride s, kernel k) of blocks 1..16; block 0 is (1, 16, 1, 1, 3).
SETTINGS = [(3, 24, 3, 2, 3), (3, 40, 3, 2, 5), (6, 80, 3, 2, 5), (6, 96, 2, 1, 3), (6, 192, 4, 2, 5),
            (6, 320, 1, 1, 3)]
NUM_CHANNELS = 2 + 2 * 16 + 1
KERNELS = [3] + [k for _, _, n, _, k in SETTINGS for _ in range(n)]


def default_channels(width_mult: float) -> list[int]:
    cin = make_divisible(32 * width_mult)
    channels = [cin, make_divisible(16 * width_mult)]
    cin = channels[-1]
    for t, c, n, _, _ in SETTINGS:
        cout = make_divisible(c * width_mult)
        for _ in range(n):
            channels += [int(round(cin * t)), cout]
            cin = cout
    return channels + [make_divisible(1280 * max(1.0, width_mult))]


def block_strides(stem: str) -> list[int]:
    return cifar_strides([1] + [s if i == 0 else 1 for _, _, n, s, _ in SETTINGS for i in range(n)], stem)


@dataclass
class MNasNetSpec(MobileSpec):
    num_channels = NUM_CHANNELS
    layout = "stem out, block 0 out, (expand, out) for blocks 1-16, last conv out"
    default_channels = staticmethod(default_channels)


@register_family("mnasnet")
class MNasNet(MobileNet):
    Spec = MNasNetSpec

    def __init__(self, spec: MNasNetSpec) -> None:
        super().__init__(spec)
        ch = spec.channel_list()
        self._finish(inverted_residual_features(spec.in_channels, ch, stem_stride(spec.stem), block_strides(spec.stem),
                                                nn.ReLU, kernels=KERNELS, block0_residual=False), ch[-1])


register_model("mnasnet-imagenet", family="mnasnet")
