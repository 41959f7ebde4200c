"""TAS's width/depth super-network over a CIFAR ResNet (search mode only).

Every conv computes its maximum number of output channels. Per forward, each conv samples two
distinct candidate widths from a Gumbel-softmax over its width logits; each candidate is the
conv output truncated to that width, normalised by that width's own BN and CWI-resized back to
the maximum width, and the two are mixed with their re-normalised Gumbel weights. Each stage
mixes the outputs after every candidate exit block with Gumbel-softmax depth probabilities.
Feature maps therefore always have the stage's maximum width, so residual adds and later convs
see fixed shapes.

The super-net's shortcut convs (strided, or where the maximum widths differ) are not searched:
they run at full width, like the 1x1 shortcuts that the inferred network adds.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.methods.tas.choices import depth_choices, width_choices
from nas_impl.methods.tas.cwi import cwi
from nas_impl.models.blocks import kaiming_init

_DIVISOR = {"basic": 6, "bottleneck": 9}


def gumbel_logits(logits: torch.Tensor, tau: float, generator: torch.Generator | None) -> torch.Tensor:
    """(log_softmax(a) + g) / tau with g ~ Gumbel(0, 1)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    tiny = torch.finfo(logits.dtype).tiny
    g = -torch.log(-torch.log(u.clamp_min(tiny)))
    return (F.log_softmax(logits, dim=-1) + g) / tau


def sample_widths(logits: torch.Tensor, tau: float, generator: torch.Generator | None,
                  k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of `k` distinct candidates (multinomial without replacement on the Gumbel
    probabilities) and their mixing weights (softmax of their Gumbel logits)."""
    z = gumbel_logits(logits, tau, generator)
    k = min(k, logits.numel())
    idx = torch.multinomial(F.softmax(z, dim=-1).detach(), k, replacement=False, generator=generator)
    return idx, F.softmax(z[idx], dim=-1)


class WidthConv(nn.Module):
    """A conv at maximum width with one BN per candidate width; `row` = its width-logit row."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, row: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.choices = width_choices(cout)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in self.choices)
        self.cin, self.cout, self.kernel, self.stride, self.row = cin, cout, kernel, stride, row

    def forward(self, x: torch.Tensor, logits: torch.Tensor, tau: float,
                generator: torch.Generator | None) -> torch.Tensor:
        y = self.conv(x)
        idx, weights = sample_widths(logits[: len(self.choices)], tau, generator)
        out = 0
        for i, k in enumerate(idx.tolist()):
            width = self.choices[k]
            out = out + weights[i] * cwi(self.bns[k](y[:, :width]), self.cout)
        return out


class SearchBlock(nn.Module):
    """Basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1) block of `WidthConv`s."""

    def __init__(self, kind: str, cin: int, width: int, expansion: int, stride: int, first_row: int,
                 block_relu: bool) -> None:
        super().__init__()
        if kind == "basic":
            shapes = [(cin, width, 3, stride), (width, width, 3, 1)]
        else:
            shapes = [(cin, width, 1, 1), (width, width, 3, stride), (width, width * expansion, 1, 1)]
        self.convs = nn.ModuleList(WidthConv(*s, row=first_row + i) for i, s in enumerate(shapes))
        cout = shapes[-1][1]
        self.shortcut: nn.Module | None = None
        if stride > 1 or cin != cout:
            pool = [nn.AvgPool2d(stride)] if stride > 1 else []
            self.shortcut = nn.Sequential(*pool, nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.stride, self.cin, self.cout, self.block_relu = stride, cin, cout, block_relu

    def forward(self, x: torch.Tensor, width_logits: torch.Tensor, tau: float,
                generator: torch.Generator | None) -> torch.Tensor:
        out = x
        for i, conv in enumerate(self.convs):
            out = conv(out, width_logits[conv.row], tau, generator)
            if i < len(self.convs) - 1:
                out = F.relu(out)
        out = out + (x if self.shortcut is None else self.shortcut(x))
        # The paper-time code omitted this ReLU (tas.md §6 #1, fixed in AutoDL-Projects 076f9c2).
        return F.relu(out) if self.block_relu else out


class TASResNet(nn.Module):
    """Super-network of a CIFAR ResNet of `depth` (base width 16) for TAS's search.

    `image_size` (H, W) is the input resolution that `flops.expected_macs` counts at.
    """

    def __init__(self, depth: int = 20, block: str = "basic", num_classes: int = 10, in_channels: int = 3,
                 expansion: int = 4, block_relu: bool = True, image_size: tuple[int, int] = (32, 32)) -> None:
        super().__init__()
        if block not in _DIVISOR or depth <= 2 or (depth - 2) % _DIVISOR[block]:
            raise ValueError(f"invalid depth {depth} for {block} blocks")
        self.depth, self.block, self.num_classes, self.in_channels = depth, block, num_classes, in_channels
        self.image_size = tuple(image_size)
        n = (depth - 2) // _DIVISOR[block]
        self.stage_depths = [n, n, n]
        self.depth_choices = depth_choices(n)
        base = 16
        self.stem = WidthConv(in_channels, base, 3, 1, row=0)
        rows, cin, stages = 1, base, []
        for s, width in enumerate([base, 2 * base, 4 * base]):
            blocks = []
            for b in range(n):
                blk = SearchBlock(block, cin, width, expansion, 2 if s > 0 and b == 0 else 1, rows, block_relu)
                rows, cin = rows + len(blk.convs), blk.cout
                blocks.append(blk)
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(cin, num_classes)
        kaiming_init(self)
        max_choices = max(len(c.choices) for c in self.width_convs())
        self.width_logits = nn.Parameter(1e-2 * torch.randn(rows, max_choices))
        self.depth_logits = nn.Parameter(1e-2 * torch.randn(len(self.stages), len(self.depth_choices)))

    def width_convs(self) -> list[WidthConv]:
        """Every searched conv in width-logit row order (stem, then block by block)."""
        return [self.stem] + [c for stage in self.stages for blk in stage for c in blk.convs]

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.width_logits, self.depth_logits]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
        x = F.relu(self.stem(x, self.width_logits[0], tau, generator))
        for s, stage in enumerate(self.stages):
            probs = F.softmax(gumbel_logits(self.depth_logits[s], tau, generator), dim=-1)
            exits = []
            for b, blk in enumerate(stage):
                x = blk(x, self.width_logits, tau, generator)
                if b + 1 in self.depth_choices:
                    exits.append(x)
            # Every exit of a stage already has the stage's maximum width: no CWI needed.
            x = sum(p * out for p, out in zip(probs, exits))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
