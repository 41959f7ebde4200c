"""Family `pyramid-tree`: ProxylessNAS's released CIFAR-10 network `proxyless_cifar`, a bottleneck
PyramidNet whose residual branch is a searched tree cell (class `PyramidTreeNet` of the official
`proxyless_nas/cifar_modules.py`, layers from `proxyless_nas/layers.py`; the net is the config
han-cai/files proxylessnas/proxyless_cifar.config, ../shared/reference/proxylessnas.md §2).

Every official layer here runs in the order "bn_act_weight" (pre-activation): BN and ReLU come
before the conv. Network:

- first conv: 3x3 conv (`first_conv` channels, stride 1, no bias) -> BN.
- `len(widths)` residual tree blocks; block i has bottleneck width w = widths[i], output 4w, and
  runs at stride 2 when i is in `downsample` (block indices from 0), else 1:
  in_bottle BN -> 1x1 conv (cin -> w); the tree cell (below); out_bottle BN -> ReLU -> 1x1 conv
  (w -> 4w); final BN. The shortcut is the input (2x2 average pool when strided), zero-padded
  from cin to 4w channels, and is added.
- head: BN -> ReLU -> global average pool (the official 8x8 pool at a 32x32 input) -> Linear
  (with bias).

The tree cell of a block of width w (fixed in every block of the released net; only its ops vary):

- root edge: BN -> ReLU -> 3x3 conv w -> 2w, groups 2, the block's stride, then a channel shuffle
  of the 2 groups (`ConvLayer(groups=2, has_shuffle=True)`);
- a split node: the 2w channels are cut into two halves of w; each half runs a copy/add node, then
  a branch BN, and adds its own input (`TreeNode(split_type='split', has_branch_bn=True)`, whose
  edges are identities); the two halves are summed;
- each copy/add node has two paths; a path is an op followed by another copy/add node whose two
  leaf ops both see the op's output and are summed.

`cells` holds one string per block naming those 12 ops: `x(x+x)+x(x+x) | x(x+x)+x(x+x)`, the two
halves split by `|`, each half two paths `op(leaf+leaf)` joined by `+`. Ops (the CIFAR candidate
ops of the paper, all stride 1, width-preserving):

- `sep3`, `sep5`, `sep7`: depthwise-separable kxk conv: BN -> ReLU -> kxk depthwise -> 1x1 conv;
  `sep3d2`: the same with a 3x3 depthwise of dilation 2;
- `max3`, `avg3`: 3x3 max / average pool, padding 1 (the average excludes the padding);
- `id`: the identity.

E.g. 'sep7(sep3d2+id)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7)' (the first block of
proxyless_cifar). Whitespace is free; the spec keeps the canonical form shown.

Defaults are proxyless_cifar (variant `proxyless-cifar`, also
`replications/proxylessnas/archs/proxyless_cifar.yaml`): 54 blocks, widths 18 -> 100 (PyramidNet
alpha 84: the config's widths are 2 * floor((18 + 84 i / 54) / 2)), downsampling at blocks 18 and
36. The config's cell and path drop rates are 0, so the net has no drop-path. It gives no BN
settings and the official code no initialisation for this net (its CIFAR training code is not
released), so BN keeps PyTorch's momentum 0.1 / eps 1e-5 and layers PyTorch's default init, as
`PyramidTreeNet.build_from_config` leaves them. The 2x2 shortcut pool uses ceil mode so that odd
feature maps keep the size of the strided conv (no change at even sizes).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.models.registry import SpecModel, register_family, register_model
from nas_impl.models.spec import CIFAR_SIZE, SpecProblem, did_you_mean, require, require_positive

FAMILY = "pyramid-tree"
OPS = ("sep3", "sep5", "sep7", "sep3d2", "max3", "avg3", "id")
GRAMMAR = ("'x(x+x)+x(x+x) | x(x+x)+x(x+x)' with each x an op: " + ", ".join(OPS)
           + " (e.g. 'sep7(sep3d2+id)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7)')")

# A cell: two halves of two paths, each path (op, (leaf, leaf)).
Path = tuple[str, tuple[str, str]]
Cell = tuple[tuple[Path, Path], tuple[Path, Path]]

_PATH = r"(\w+)\((\w+)\+(\w+)\)"
_CELL_RE = re.compile(rf"{_PATH}\+{_PATH}\|{_PATH}\+{_PATH}")


def _cell_problem(text: Any) -> tuple[Cell | None, str]:
    """(parsed cell, '') or (None, what is wrong and how to write it)."""
    if not isinstance(text, str):
        return None, f"expected a tree cell string {GRAMMAR}"
    match = _CELL_RE.fullmatch(re.sub(r"\s+", "", text))
    if match is None:
        return None, f"expected a tree cell string {GRAMMAR}"
    ops = match.groups()
    for op in ops:
        if op not in OPS:
            return None, f"unknown op '{op}'{did_you_mean(op, OPS)}: expected a tree cell string {GRAMMAR}"
    paths = [(ops[i], (ops[i + 1], ops[i + 2])) for i in range(0, 12, 3)]
    return ((paths[0], paths[1]), (paths[2], paths[3])), ""


def parse_cell(text: str) -> Cell:
    """'a(b+c)+d(e+f) | g(h+i)+j(k+l)' -> (((a, (b, c)), (d, (e, f))), ((g, (h, i)), (j, (k, l))))."""
    cell, problem = _cell_problem(text)
    if problem:
        raise SpecProblem(f"tree cell string {text!r}", problem)
    return cell


def format_cell(cell: Cell) -> str:
    """The inverse of `parse_cell`, in canonical form."""
    return " | ".join("+".join(f"{op}({a}+{b})" for op, (a, b) in half) for half in cell)


def cell_ops(cell: Cell) -> list[str]:
    """The 12 ops of a cell in order: each path's op, then its two leaves."""
    return [op for half in cell for path_op, leaves in half for op in (path_op, *leaves)]


# The released net (han-cai/files proxylessnas/proxyless_cifar.config, block by block) ------------

PROXYLESS_CIFAR: dict[str, Any] = dict(
    first_conv=16,
    widths=[18, 18, 20, 22, 24, 24, 26, 28, 30, 32, 32, 34, 36, 38, 38, 40, 42, 44,
            46, 46, 48, 50, 52, 52, 54, 56, 58, 60, 60, 62, 64, 66, 66, 68, 70, 72,
            74, 74, 76, 78, 80, 80, 82, 84, 86, 88, 88, 90, 92, 94, 94, 96, 98, 100],
    downsample=[18, 36],
    cells=[
        "sep7(sep3d2+id)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7)",
        "avg3(avg3+avg3)+id(sep3+id) | max3(sep3d2+id)+sep7(sep3d2+sep3d2)",
        "sep7(sep3+avg3)+id(sep5+avg3) | sep3(sep3+avg3)+sep3d2(sep3d2+sep5)",
        "avg3(sep5+sep3d2)+sep5(sep3+sep3d2) | sep3d2(sep7+sep3)+sep7(id+sep7)",
        "avg3(sep5+sep3d2)+id(sep3d2+sep5) | sep7(sep7+avg3)+max3(id+max3)",
        "sep7(sep7+max3)+max3(sep3+sep5) | avg3(sep3d2+sep3)+sep7(id+id)",
        "sep3d2(id+max3)+max3(sep7+sep7) | sep7(sep5+sep3)+sep7(id+id)",
        "sep3d2(sep5+sep7)+sep3d2(sep5+sep7) | max3(avg3+avg3)+sep5(sep3+sep7)",
        "sep7(sep5+max3)+sep3d2(id+id) | max3(sep3+avg3)+max3(avg3+sep3d2)",
        "sep5(sep3+id)+id(sep3+sep7) | sep3(sep5+sep7)+id(sep5+sep7)",
        "sep7(sep7+sep5)+avg3(sep3+sep5) | sep3d2(avg3+sep3d2)+id(sep3d2+sep3)",
        "sep5(avg3+sep5)+sep3d2(sep3+sep3) | avg3(sep7+sep7)+sep5(sep3d2+sep3)",
        "max3(sep7+sep3)+max3(sep7+sep3d2) | sep3(avg3+sep5)+max3(sep7+id)",
        "sep3(max3+sep3d2)+sep7(sep7+sep3d2) | sep5(id+sep3)+sep3d2(sep7+sep3)",
        "sep3d2(max3+sep3)+avg3(sep3d2+sep3d2) | avg3(sep5+id)+id(sep5+id)",
        "sep5(sep3d2+sep5)+id(avg3+avg3) | sep3d2(sep5+sep5)+sep5(sep7+sep3)",
        "sep7(sep5+sep5)+sep5(sep3d2+sep3) | id(max3+sep7)+sep3d2(sep3+sep7)",
        "max3(id+id)+sep3d2(sep3+id) | sep7(sep5+sep7)+max3(id+sep3d2)",
        "sep3d2(sep5+avg3)+max3(avg3+sep7) | sep5(sep7+sep3)+avg3(avg3+max3)",
        "sep7(id+sep7)+sep3d2(id+sep7) | sep3d2(sep3+sep7)+max3(max3+sep5)",
        "max3(avg3+sep3)+sep3d2(id+sep3d2) | max3(max3+sep5)+max3(id+avg3)",
        "sep3d2(sep7+sep3)+avg3(avg3+sep3) | sep3(sep7+id)+avg3(sep3d2+sep3d2)",
        "sep3d2(max3+avg3)+max3(sep7+id) | sep7(sep3d2+id)+sep3d2(avg3+max3)",
        "sep7(max3+sep7)+sep5(max3+id) | max3(avg3+sep3d2)+id(max3+sep7)",
        "id(avg3+sep5)+sep5(max3+sep5) | sep3d2(sep7+avg3)+sep3d2(sep3d2+max3)",
        "sep3(avg3+sep3d2)+id(sep3d2+sep3d2) | sep3d2(avg3+avg3)+sep3(avg3+sep3)",
        "sep3d2(max3+sep7)+sep7(id+max3) | max3(sep5+sep5)+max3(sep5+sep3d2)",
        "sep3(sep7+sep3)+sep7(avg3+id) | max3(sep3+sep7)+sep7(max3+max3)",
        "sep7(sep7+sep7)+sep5(avg3+sep3) | sep3(id+sep3d2)+sep3(avg3+sep3)",
        "sep5(avg3+id)+id(avg3+sep5) | avg3(sep3+avg3)+sep7(avg3+max3)",
        "id(avg3+sep3d2)+sep3(id+sep7) | id(sep7+max3)+avg3(id+sep3d2)",
        "sep7(sep5+id)+max3(sep7+sep3d2) | max3(sep3d2+max3)+sep7(sep7+sep7)",
        "sep3(max3+sep3)+sep7(id+sep3) | sep5(id+sep3)+sep3(sep5+id)",
        "sep3d2(sep3d2+sep3)+sep7(sep3d2+sep7) | sep3(sep3+sep3d2)+id(max3+id)",
        "max3(id+sep5)+id(sep5+avg3) | sep3(avg3+id)+sep7(avg3+sep3d2)",
        "sep7(sep7+sep5)+max3(sep3d2+avg3) | sep7(sep7+sep5)+sep3(sep5+sep5)",
        "avg3(avg3+avg3)+avg3(sep3d2+avg3) | sep7(sep5+id)+id(id+avg3)",
        "max3(id+avg3)+sep7(sep5+id) | id(avg3+id)+id(sep7+id)",
        "sep3d2(sep7+max3)+sep3(id+sep5) | avg3(sep3+id)+id(max3+avg3)",
        "sep7(avg3+sep5)+sep7(avg3+sep3) | max3(avg3+sep3)+id(max3+max3)",
        "id(avg3+sep7)+id(id+sep7) | id(avg3+sep5)+max3(avg3+sep7)",
        "sep3d2(sep5+id)+id(max3+sep5) | sep7(sep3d2+sep7)+sep5(id+sep3d2)",
        "max3(id+avg3)+max3(avg3+max3) | sep3d2(id+sep5)+avg3(sep3+id)",
        "sep7(sep5+sep7)+sep7(sep7+avg3) | sep3d2(sep3+max3)+sep7(sep7+avg3)",
        "sep3d2(sep3d2+max3)+avg3(sep3d2+sep3) | sep7(id+sep3d2)+sep3d2(max3+sep5)",
        "avg3(avg3+max3)+sep3d2(sep3+max3) | sep3d2(sep7+sep3d2)+id(avg3+id)",
        "max3(avg3+sep7)+max3(sep3+sep3) | sep5(avg3+id)+sep3d2(id+sep3)",
        "sep5(sep7+sep3d2)+sep3d2(id+max3) | max3(sep3+sep5)+sep7(max3+id)",
        "sep7(sep3+max3)+sep7(sep3d2+avg3) | max3(max3+max3)+sep5(sep5+max3)",
        "max3(id+avg3)+sep5(sep3d2+sep3) | sep5(sep7+sep3)+sep3(sep7+sep7)",
        "id(avg3+sep5)+sep3(sep7+sep7) | id(sep7+sep7)+sep7(sep3+avg3)",
        "sep5(sep5+sep3)+max3(avg3+id) | sep5(avg3+max3)+sep5(sep5+id)",
        "sep3(sep3d2+sep3)+max3(max3+avg3) | id(max3+sep3d2)+sep7(sep3+sep3)",
        "sep7(sep3+max3)+sep7(sep5+id) | sep5(max3+sep3)+max3(sep3+sep7)",
    ],
)


# Spec ----------------------------------------------------------------------------------------

@dataclass
class PyramidTreeSpec:
    """Keys of `pyramid-tree`; the defaults build the released `proxyless_cifar`."""

    num_classes: int = 10
    in_channels: int = 3
    first_conv: int = PROXYLESS_CIFAR["first_conv"]
    widths: list[int] = field(default_factory=lambda: list(PROXYLESS_CIFAR["widths"]))
    downsample: list[int] = field(default_factory=lambda: list(PROXYLESS_CIFAR["downsample"]))
    cells: list[str] = field(default_factory=lambda: list(PROXYLESS_CIFAR["cells"]))

    @property
    def natural_input(self) -> tuple[int, int, int]:
        return (self.in_channels, CIFAR_SIZE, CIFAR_SIZE)

    def parsed_cells(self) -> list[Cell]:
        return [parse_cell(text) for text in self.cells]

    def block_shapes(self) -> list[tuple[int, int, int, int]]:
        """(in channels, bottleneck width, out channels = 4 x width, stride) of each block."""
        shapes, cin = [], self.first_conv
        for i, width in enumerate(self.widths):
            shapes.append((cin, width, 4 * width, 2 if i in self.downsample else 1))
            cin = 4 * width
        return shapes

    def check(self) -> None:
        require_positive(num_classes=self.num_classes, in_channels=self.in_channels, first_conv=self.first_conv)
        require(len(self.widths) > 0, "key 'widths' is empty", "expected one bottleneck width per block")
        for i, width in enumerate(self.widths):
            require(width >= 2 and width % 2 == 0, f"key 'widths' entry {i} = {width}",
                    "expected a positive even width (the root 3x3 conv has 2 groups)")
        for i, (cin, _, cout, _) in enumerate(self.block_shapes()):
            require(cout >= cin, f"key 'widths' entry {i} = {self.widths[i]}",
                    f"the block's output 4 x width = {cout} must be at least its input {cin} "
                    "(the shortcut zero-pads, it cannot drop channels)")
        n = len(self.widths)
        require(self.downsample == sorted(set(self.downsample)) and all(0 <= i < n for i in self.downsample),
                f"key 'downsample' = {self.downsample}",
                f"expected increasing block indices in 0..{n - 1}, without repeats")
        require(len(self.cells) == n, f"key 'cells' has {len(self.cells)} entries",
                f"expected one cell per block: {n}, as many as 'widths'")
        for i, text in enumerate(self.cells):
            cell, problem = _cell_problem(text)
            if problem:
                raise SpecProblem(f"key 'cells' entry {i} = {text!r}", problem)
            self.cells[i] = format_cell(cell)  # keep the canonical spelling


def op_counts(spec: PyramidTreeSpec) -> Counter:
    """How often each op occurs over all cells (12 per cell; the split node's identity edges and
    the root convs not included)."""
    return Counter(op for cell in spec.parsed_cells() for op in cell_ops(cell))


# Modules -------------------------------------------------------------------------------------

class ChannelShuffle(nn.Module):
    """Interleave the channels of `groups` groups (ShuffleNet; `utils.shuffle_layer`)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def tree_op(token: str, channels: int) -> nn.Module:
    """One candidate op (see the module docstring), width-preserving, stride 1."""
    if token == "id":
        return nn.Identity()
    if token in ("max3", "avg3"):
        return nn.MaxPool2d(3, 1, 1) if token == "max3" else nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    match = re.fullmatch(r"sep(\d)(?:d(\d))?", token)
    if token not in OPS or match is None:
        raise SpecProblem(f"op {token!r}", "expected one of " + ", ".join(OPS))
    k, d = int(match.group(1)), int(match.group(2) or 1)
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels, k, 1, d * (k // 2), dilation=d, groups=channels, bias=False),
                         nn.Conv2d(channels, channels, 1, bias=False))


class TreePath(nn.Module):
    """op, then the sum of two leaf ops of its output."""

    def __init__(self, path: Path, channels: int) -> None:
        super().__init__()
        self.op = tree_op(path[0], channels)
        self.leaves = nn.ModuleList(tree_op(t, channels) for t in path[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(x)
        return self.leaves[0](y) + self.leaves[1](y)


class TreeHalf(nn.Module):
    """One half of the split: the sum of two paths, then the branch BN, plus the half's input."""

    def __init__(self, half: tuple[Path, Path], channels: int) -> None:
        super().__init__()
        self.paths = nn.ModuleList(TreePath(p, channels) for p in half)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn(self.paths[0](x) + self.paths[1](x))


class TreeCell(nn.Module):
    """Root edge (BN, ReLU, 3x3 group conv w -> 2w, channel shuffle), split into halves, summed."""

    def __init__(self, cell: Cell, width: int, stride: int) -> None:
        super().__init__()
        self.width = width
        self.root = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, 2 * width, 3, stride, 1, groups=2, bias=False), ChannelShuffle(2))
        self.halves = nn.ModuleList(TreeHalf(half, width) for half in cell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.root(x)
        return self.halves[0](x[:, :self.width]) + self.halves[1](x[:, self.width:])


class ResidualTreeBlock(nn.Module):
    """in_bottle (BN, 1x1) -> tree cell -> out_bottle (BN, ReLU, 1x1 to 4w) -> final BN, plus the
    (average-pooled when strided) input zero-padded to 4w channels."""

    def __init__(self, cell: Cell, cin: int, width: int, stride: int) -> None:
        super().__init__()
        self.extra = 4 * width - cin
        self.in_bottle = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, width, 1, bias=False))
        self.cell = TreeCell(cell, width, stride)
        self.out_bottle = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                        nn.Conv2d(width, 4 * width, 1, bias=False))
        self.final_bn = nn.BatchNorm2d(4 * width)
        self.shortcut = nn.AvgPool2d(2, ceil_mode=True) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.final_bn(self.out_bottle(self.cell(self.in_bottle(x))))
        return out + F.pad(self.shortcut(x), (0, 0, 0, 0, 0, self.extra))


@register_family(FAMILY)
class PyramidTree(SpecModel):
    """`first_conv` (conv, BN) -> `blocks` (ResidualTreeBlocks) -> `head` (BN, ReLU, pool,
    flatten) -> `classifier` (Linear)."""

    Spec = PyramidTreeSpec

    def __init__(self, spec: PyramidTreeSpec) -> None:
        super().__init__(spec)
        self.first_conv = nn.Sequential(nn.Conv2d(spec.in_channels, spec.first_conv, 3, 1, 1, bias=False),
                                        nn.BatchNorm2d(spec.first_conv))
        self.blocks = nn.Sequential(*(ResidualTreeBlock(cell, cin, width, stride) for cell, (cin, width, _, stride)
                                      in zip(spec.parsed_cells(), spec.block_shapes())))
        out = 4 * spec.widths[-1]
        self.head = nn.Sequential(nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(out, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.first_conv(x))))


register_model("proxyless-cifar", family=FAMILY, **PROXYLESS_CIFAR)
