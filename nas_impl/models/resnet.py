"""The ResNet body shared by the CIFAR and ImageNet families, and its channel-list reading.

A per-layer channel list (TAS's `xchannels` without the leading input entry) holds the stem
conv's output, then 2 entries per basic block or 3 per bottleneck, for every block of the full
depth. `blocks` keeps the first k blocks of each stage; the entries of dropped blocks are
ignored, and each block's input is the output of the previous kept block (as TAS infers it).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas_impl.models.blocks import BasicBlock, Bottleneck, make_shortcut, kaiming_init
from nas_impl.models.registry import SpecModel
from nas_impl.models.spec import SpecProblem, require

BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
CONVS_PER_BLOCK = {"basic": 2, "bottleneck": 3}

# One stage of the plan: (input channels, block widths, stride) per kept block.
StagePlan = list[tuple[int, list[int], int]]


def default_channels(stem: int, depths: list[int], block: str, widths: list[int], expansion: int) -> list[int]:
    per_block = {"basic": lambda w: [w, w], "bottleneck": lambda w: [w, w, w * expansion]}[block]
    return [stem] + [c for depth, w in zip(depths, widths) for _ in range(depth) for c in per_block(w)]


def check_layout(channels: list[int] | None, blocks: list[int] | None, depths: list[int],
                 block: str, depth: int) -> None:
    """Validate `channels` / `blocks` against the full-depth layout `depths` (blocks per stage)."""
    per_block = CONVS_PER_BLOCK[block]
    if channels is not None:
        expected = 1 + per_block * sum(depths)
        require(
            len(channels) == expected,
            f"key 'channels' has {len(channels)} entries",
            f"expected {expected} for depth {depth} with {block} blocks "
            f"(the stem conv, then {per_block} per block for all {sum(depths)} blocks)",
        )
    if blocks is not None:
        require(
            len(blocks) == len(depths),
            f"key 'blocks' has {len(blocks)} entries",
            f"expected {len(depths)} (blocks kept per stage)",
        )
        for i, (kept, full) in enumerate(zip(blocks, depths)):
            require(1 <= kept <= full, f"key 'blocks' entry {i} = {kept}", f"expected 1..{full} for depth {depth}")


def plan_stages(channels: list[int], depths: list[int], kept: list[int], block: str) -> list[StagePlan]:
    """Read the channel list into per-stage block plans; the first block of stage > 0 has stride 2."""
    per_block = CONVS_PER_BLOCK[block]
    cin, pos, stages = channels[0], 1, []
    for s, (full, keep) in enumerate(zip(depths, kept)):
        stage: StagePlan = []
        for b in range(full):
            widths = channels[pos : pos + per_block]
            pos += per_block
            if b < keep:
                stage.append((cin, widths, 2 if s > 0 and b == 0 else 1))
                cin = widths[-1]
        stages.append(stage)
    return stages


class ResNet(SpecModel):
    """Stem -> stages (`layer1`, `layer2`, ...) -> global average pool -> `fc`."""

    def _build(self, in_channels: int, stem_kernel: int, stem_stride: int, maxpool: bool,
               stages: list[StagePlan], stem_out: int, block: str, shortcut: str,
               shortcut_bn: bool, num_classes: int, zero_init_residual: bool) -> None:
        self.conv1 = nn.Conv2d(in_channels, stem_out, stem_kernel, stem_stride, stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_out)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if maxpool else nn.Identity()
        cls = BLOCKS[block]
        self.stage_names = []
        for s, stage in enumerate(stages):
            layer = []
            for cin, widths, stride in stage:
                cout = widths[-1]
                if shortcut == "A" and cout < cin:
                    raise SpecProblem(
                        f"shortcut 'A' cannot shrink {cin} -> {cout} channels (stage {s + 1})",
                        "use shortcut 'tas' or 'B', or non-decreasing block outputs",
                    )
                bn = shortcut_bn or (block == "basic" and stride == 1)
                layer.append(cls(cin, widths, stride, make_shortcut(shortcut, cin, cout, stride, bn)))
            self.stage_names.append(f"layer{s + 1}")
            self.add_module(self.stage_names[-1], nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(stages[-1][-1][1][-1], num_classes)
        kaiming_init(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))
