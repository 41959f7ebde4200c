"""Family `resnet-imagenet`: torchvision's ResNet-18/34/50/101/152 (v1.5: the stride sits on the
3x3 conv of a bottleneck), with TAS's per-layer `channels` / `blocks` for pruned shapes.

Defaults reproduce torchvision exactly (same parameter count and state_dict keys, so
torchvision weights load). `shortcut: tas` gives the structure of TAS's `InferImagenetResNet`:
strided shortcuts become 2x2 average pool + 1x1 conv + BN (same parameters and conv MACs as
torchvision's strided 1x1 conv). TAS's released ImageNet configs also set
`zero_init_residual: true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nas_impl.models.registry import register_family, register_model
from nas_impl.models.resnet import ResNet, check_layout, default_channels, plan_stages
from nas_impl.models.spec import IMAGENET_SIZE, require, require_positive, require_positive_list

# depth -> (block, blocks per stage), as in torchvision / He et al. Table 1.
LAYOUTS: dict[int, tuple[str, list[int]]] = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}


@dataclass
class ResNetImagenetSpec:
    depth: int = 18
    block: Literal["basic", "bottleneck"] | None = None  # implied by depth
    num_classes: int = 1000
    in_channels: int = 3
    base_width: int = 64
    channels: list[int] | None = None
    blocks: list[int] | None = None
    shortcut: Literal["B", "tas"] = "B"
    zero_init_residual: bool = False

    @property
    def stage_depths(self) -> list[int]:
        return LAYOUTS[self.depth][1]

    @property
    def natural_input(self) -> tuple[int, int, int]:
        return (self.in_channels, IMAGENET_SIZE, IMAGENET_SIZE)

    def channel_list(self) -> list[int]:
        """The channel list this spec builds: `channels`, or the default at `base_width`."""
        w = self.base_width
        return list(self.channels or default_channels(w, self.stage_depths, LAYOUTS[self.depth][0],
                                                      [w, 2 * w, 4 * w, 8 * w], 4))

    def check(self) -> None:
        require_positive(num_classes=self.num_classes, in_channels=self.in_channels, base_width=self.base_width)
        require(self.depth in LAYOUTS, f"key 'depth' = {self.depth}",
                "expected one of " + ", ".join(map(str, LAYOUTS)))
        implied = LAYOUTS[self.depth][0]
        require(self.block in (None, implied), f"key 'block' = '{self.block}' does not match depth {self.depth}",
                f"ResNet-{self.depth} uses block '{implied}' (or leave 'block' out)")
        self.block = implied
        if self.channels is not None:
            require(self.base_width == 64, "keys 'channels' and 'base_width' both given",
                    "give either a channel list or base_width, not both")
        require_positive_list("channels", self.channels)
        check_layout(self.channels, self.blocks, LAYOUTS[self.depth][1], implied, self.depth)


@register_family("resnet-imagenet")
class ResNetImagenet(ResNet):
    Spec = ResNetImagenetSpec

    def __init__(self, spec: ResNetImagenetSpec) -> None:
        super().__init__(spec)
        block, depths = LAYOUTS[spec.depth]
        channels = spec.channel_list()
        stages = plan_stages(channels, depths, spec.blocks or depths, block)
        self._build(spec.in_channels, 7, 2, True, stages, channels[0], block, spec.shortcut,
                    True, spec.num_classes, spec.zero_init_residual)


register_model("resnet18-imagenet", family="resnet-imagenet", depth=18)
register_model("resnet50-imagenet", family="resnet-imagenet", depth=50)
