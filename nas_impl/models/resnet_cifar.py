"""Family `resnet-cifar`: He et al. (2016) CIFAR ResNets, and TAS's pruned shapes of them.

Layout: 3x3 stem conv (stride 1), three stages of n blocks at widths w, 2w, 4w (w = base_width,
the first block of stages 2 and 3 strided), global average pool, FC. Basic blocks need
depth = 6n + 2, bottlenecks (expansion 4) depth = 9n + 2.

Shortcuts (`shortcut`), used when a block's stride or channel count changes:
- 'tas' (default): the structure of TAS's inferred networks (AutoDL-Projects
  `InferCifarResNet.py`), which is what the released searched shapes and TAS's baselines
  (ResNet-20: 40.81M MACs, incl. FC bias) are counted on. Strided: 2x2 average pool, then 1x1 conv
  without BN. Stride 1: 1x1 conv with BN (basic) or without BN (bottleneck).
- 'A': He et al.'s parameter-free zero-padding identity (ResNet-20: 40.55M MACs).
- 'B': strided 1x1 conv + BN (torchvision style).

`channels` and `blocks` express TAS's `xchannels` (minus its leading input entry) and `xblocks`
directly; see `nas_impl/models/resnet.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nas_impl.models.registry import register_family, register_model
from nas_impl.models.resnet import ResNet, check_layout, default_channels, plan_stages
from nas_impl.models.spec import CIFAR_SIZE, require, require_positive, require_positive_list

_DIVISOR = {"basic": 6, "bottleneck": 9}


@dataclass
class ResNetCifarSpec:
    depth: int = 20
    block: Literal["basic", "bottleneck"] = "basic"
    num_classes: int = 10
    in_channels: int = 3
    base_width: int = 16
    expansion: int = 4
    channels: list[int] | None = None
    blocks: list[int] | None = None
    shortcut: Literal["tas", "A", "B"] = "tas"
    zero_init_residual: bool = False

    @property
    def stage_depths(self) -> list[int]:
        return [(self.depth - 2) // _DIVISOR[self.block]] * 3

    @property
    def natural_input(self) -> tuple[int, int, int]:
        """The input the network is built for (MACs and memory are counted at it)."""
        return (self.in_channels, CIFAR_SIZE, CIFAR_SIZE)

    def check(self) -> None:
        require_positive(num_classes=self.num_classes, in_channels=self.in_channels,
                         base_width=self.base_width, expansion=self.expansion)
        d = _DIVISOR[self.block]
        examples = "20, 32, 44, 56, 110" if self.block == "basic" else "29, 56, 110, 164"
        require(
            self.depth > 2 and (self.depth - 2) % d == 0,
            f"key 'depth' = {self.depth} is invalid for block '{self.block}'",
            f"expected depth with (depth - 2) % {d} == 0, e.g. {examples}",
        )
        if self.channels is not None:
            require(self.base_width == 16, "keys 'channels' and 'base_width' both given",
                    "give either a channel list or base_width, not both")
        require_positive_list("channels", self.channels)
        check_layout(self.channels, self.blocks, self.stage_depths, self.block, self.depth)

    def channel_list(self) -> list[int]:
        """The channel list this spec builds: `channels`, or the default at `base_width`."""
        w = self.base_width
        return list(self.channels or default_channels(w, self.stage_depths, self.block, [w, 2 * w, 4 * w],
                                                      self.expansion))


@register_family("resnet-cifar")
class ResNetCifar(ResNet):
    Spec = ResNetCifarSpec

    def __init__(self, spec: ResNetCifarSpec) -> None:
        super().__init__(spec)
        depths, channels = spec.stage_depths, spec.channel_list()
        stages = plan_stages(channels, depths, spec.blocks or depths, spec.block)
        self._build(spec.in_channels, 3, 1, False, stages, channels[0], spec.block, spec.shortcut,
                    False, spec.num_classes, spec.zero_init_residual)


for _depth in (20, 32, 56, 110):
    register_model(f"resnet{_depth}-cifar", family="resnet-cifar", depth=_depth)
register_model("resnet164-cifar", family="resnet-cifar", depth=164, block="bottleneck")
