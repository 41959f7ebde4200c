"""TAS's width/depth super-network over a CIFAR ResNet (search mode only), as the official
`SearchCifarResNet.py` computes it (AutoDL-Projects f46486e).

Per forward, every conv samples `samples` (2) distinct candidate widths from a Gumbel-softmax over
its width logits, all convs in one draw over the logit matrix (as the official `select2withP`),
then the depth probabilities of all stages in a second. The conv reads whatever width its input
has (the official code zero-pads the
input to the weight's width; slicing the weight is the same product), each candidate is the conv
output truncated to that width and normalised by that width's own BN, and the candidates are
CWI-resized to the larger of them and mixed with their re-normalised Gumbel weights (paper Eq. 4).
A narrow choice therefore reaches every later layer as a narrow feature map. A block's shortcut
conv (strided: 2x2 average pool first) uses the widths and weights sampled for the block's last
conv, with its own per-width BNs, so it is pruned with the block output; residual adds of
different widths add the narrower map into the first channels of the wider (`additive`). Each
stage mixes its candidate exits, CWI-resized to the widest, with Gumbel-softmax depth
probabilities; the classifier reads the first columns of its weight.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.methods.tas.choices import depth_choices, width_choices
from nas_impl.methods.tas.cwi import scaled_cwi
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
    """Per row of `logits` (-inf marks a row's missing choices): the indices of `k` distinct
    candidates (multinomial without replacement on the Gumbel probabilities) and their mixing
    weights (softmax of their Gumbel logits)."""
    z = gumbel_logits(logits, tau, generator)
    k = min(k, int(torch.isfinite(logits).sum(-1).min()))
    idx = torch.multinomial(F.softmax(z, dim=-1).detach(), k, replacement=False, generator=generator)
    return idx, F.softmax(z.gather(-1, idx), dim=-1)


def additive(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b over their shared first channels; the wider one's other channels pass unchanged."""
    if a.shape[1] == b.shape[1]:
        return a + b
    wide, narrow = (a, b) if a.shape[1] > b.shape[1] else (b, a)
    c = narrow.shape[1]
    return torch.cat([wide[:, :c] + narrow, wide[:, c:]], dim=1)


class WidthConv(nn.Module):
    """A conv with one BN per candidate output width; `row` = its width-logit row. `pool`: a 2x2
    average pool before a stride-1 conv (TAS's strided shortcut)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, row: int, pool: bool = False) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2) if pool else None
        self.conv = nn.Conv2d(cin, cout, kernel, 1 if pool else stride, kernel // 2, bias=False)
        self.choices = width_choices(cout)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in self.choices)
        self.cin, self.cout, self.kernel, self.stride, self.row = cin, cout, kernel, stride, row

    def forward(self, x: torch.Tensor, idx: list[int], weights: torch.Tensor) -> torch.Tensor:
        """The mix of the candidates `idx` (indices into `choices`) with their `weights`."""
        if self.pool is not None:
            x = self.pool(x)
        widths = [self.choices[k] for k in idx]
        top = max(widths)
        weight = self.conv.weight[:top, : x.shape[1]]  # the input's width: zero padding, without the zeros
        y = F.conv2d(x, weight, None, self.conv.stride, self.conv.padding)
        out = None
        for weight_i, k, width in zip(weights, idx, widths):
            term = scaled_cwi(self.bns[k](y[:, :width]), top, weight_i)
            out = term if out is None else out + term
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
        self.shortcut: WidthConv | None = None
        if stride > 1 or cin != cout:  # searched with the block's last conv (its row, its samples)
            self.shortcut = WidthConv(cin, cout, 1, stride, row=first_row + len(shapes) - 1, pool=stride > 1)
        self.stride, self.cin, self.cout, self.block_relu = stride, cin, cout, block_relu

    def forward(self, x: torch.Tensor, idx: list[list[int]], weights: torch.Tensor) -> torch.Tensor:
        """`idx[row]`, `weights[row]`: the candidates sampled for each width-logit row."""
        out = x
        for i, conv in enumerate(self.convs):
            out = conv(out, idx[conv.row], weights[conv.row])
            if i < len(self.convs) - 1:
                out = F.relu(out)
        last = self.convs[-1].row
        out = additive(x if self.shortcut is None else self.shortcut(x, idx[last], weights[last]), out)
        # The paper-time code omitted this ReLU (tas.md §6 #1, fixed in AutoDL-Projects 076f9c2).
        return F.relu(out) if self.block_relu else out


class TASResNet(nn.Module):
    """Super-network of a CIFAR ResNet of `depth` (base width 16) for TAS's search.

    `image_size` (H, W) is the input resolution that `flops.expected_macs` counts at; `samples`,
    the candidate widths each conv mixes (2 in TAS; 1 makes a one-hot search network compute
    exactly its derived network).
    """

    def __init__(self, depth: int = 20, block: str = "basic", num_classes: int = 10, in_channels: int = 3,
                 expansion: int = 4, block_relu: bool = True, image_size: tuple[int, int] = (32, 32),
                 samples: int = 2) -> None:
        super().__init__()
        if block not in _DIVISOR or depth <= 2 or (depth - 2) % _DIVISOR[block]:
            raise ValueError(f"invalid depth {depth} for {block} blocks")
        self.depth, self.block, self.num_classes, self.in_channels = depth, block, num_classes, in_channels
        self.image_size = tuple(image_size)
        self.samples = samples
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
        # -inf where a conv has fewer choices than the widest row (never sampled; all 0 for CIFAR ResNets)
        missing = torch.zeros(rows, max_choices)
        for conv in self.width_convs():
            missing[conv.row, len(conv.choices):] = float("-inf")
        self.register_buffer("missing", missing, persistent=False)
        self.depth_logits = nn.Parameter(1e-2 * torch.randn(len(self.stages), len(self.depth_choices)))

    def width_convs(self) -> list[WidthConv]:
        """Every searched conv in width-logit row order (stem, then block by block); shortcuts share
        their block's last row."""
        return [self.stem] + [c for stage in self.stages for blk in stage for c in blk.convs]

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.width_logits, self.depth_logits]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
        idx, weights = sample_widths(self.width_logits + self.missing, tau, generator, self.samples)
        idx = idx.tolist()
        depth_probs = F.softmax(gumbel_logits(self.depth_logits, tau, generator), dim=-1)
        x = F.relu(self.stem(x, idx[0], weights[0]))
        for s, stage in enumerate(self.stages):
            probs = depth_probs[s]
            exits = []
            for b, blk in enumerate(stage):
                x = blk(x, idx, weights)
                if b + 1 in self.depth_choices:
                    exits.append(x)
            widest = max(out.shape[1] for out in exits)
            x = sum(scaled_cwi(out, widest, p) for p, out in zip(probs, exits))
        features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.linear(features, self.fc.weight[:, : features.shape[1]], self.fc.bias)
