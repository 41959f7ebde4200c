"""Family `memnas-cells`: the CIFAR-10 cell networks that MemNAS (Liu et al., CVPR 2020) grows and
trims (../shared/reference/memnas.md §2, §3.1-§3.3). The official repository (MemNAS/MemNAS)
deleted its code at HEAD; the facts below were read from its history: the generated networks
`models/networks/round{0,1,2}/net*.py` (round 0 also at HEAD ce414e4; rounds 1-2 only at f9a9c65)
and `utils/generate_uni.py` at 68b327d (the encoding, `Network.output_channel`, `remove`,
`remove_fin`, `cal_in`). The decoder that wrote the net files (`f_to_n_uni`) was never committed.

Network (every generated file): 5 blocks, then MaxPool2d(2), flatten, Linear (with bias) to
`num_classes`. Blocks 2 and 4 (1-based) halve the resolution, 32 -> 16 -> 8, and the pool takes
it to 4, so the classifier reads (block 5 output channels) x 4 x 4 (the files hard-code that
view; the suite's pool is adaptive to a 4x4 output, the same 2x2 pool at 32 px, so that 28-px
images also fit). The stem conv the files define (3 -> w, 3x3) is never
called in `forward`; the suite leaves it out (it holds 27w + w parameters, 896 at w = 32).

A block is a chain of cells writing to *locations*: location 14 holds the block input (the image
for block 1, else the previous block's output); a cell reads two locations, runs one op on each,
combines the two results and writes location `out` (0-13; the generator gives cell k location
14 - k). A cell may read only 14 or a location an earlier cell of its block wrote. Every op makes
the block's cell width C = width x width_mults[block] channels; its input channels are those of
the location it reads. In blocks 2 and 4 an op that reads location 14 runs at stride 2, an op that
reads a cell output at stride 1 (that output is already downsampled).

Combine: `add` sums the two results (C channels); `cat` concatenates them (2C channels). The block
output is the concatenation, in cell order, of every cell output except those marked `internal`.

Ops (official index 0-6 in the op vectors; every conv has a bias, BN is PyTorch's default):

- `avg3` (0): 1x1 conv -> BN -> 3x3 average pool (stride s, padding 1, padding counted);
- `max3` (1): 1x1 conv -> BN -> 3x3 max pool (stride s, padding 1);
- `dil3` (2): 3x3 conv, dilation 2, padding 2, stride s -> BN -> ReLU;
- `fac7` (3): [1x1 conv stride s -> BN -> ReLU] -> [1x7 conv, padding (0, 3) -> BN -> ReLU] ->
  [7x1 conv, padding (3, 0) -> BN -> ReLU];
- `sep5` (4), `sep3` (5): kxk depthwise conv, stride s, padding k // 2 -> BN -> 1x1 conv -> BN -> ReLU;
- `conv3` (6): 3x3 conv, stride s, padding 1 -> BN -> ReLU;
- `none` (all-zero op vector, a trimmed op): a plain 1x1 conv (no BN, no ReLU), as the round-2
  files build it (`nn.Conv2d(inp, oup, kernel_size=1)`).

Cell strings (`blocks` is 5 lists of them; whitespace is free, the spec keeps this canonical form):

    in<i>:<op> + in<j>:<op> -> <add|cat> @<out>[ internal]

e.g. `in14:fac7 + in14:sep3 -> add @13`, round 0's best net53 (op 1 on location 14, op 2 on 14);
a trailing `internal` keeps the cell's output out of the block output.

Encoding (`encode_cells` / `decode_cells`): a cell is the 61 numbers the controller reads, six
one-hot vectors in the official order: input-1 location (15), input-2 location (15), output
location (15), op 1 (7), op 2 (7), combine (2). An all-zero op vector is `none`. Combine: [1, 0] =
`add`, [0, 1] = `cat`, [1, 1] = `add ... internal`; an internal `cat` cell has no code.

Where the official code is ambiguous or silent, and what the suite chose:

1. [0, 1] changed meaning between generations. The round-0/1 files build it as concatenation
   (e.g. round0/net54.py); the round-2 files (round2/net462-466.py, from `remove_fin`, which sets
   [0, 1] on a cell that another cell reads) build it as an add whose output is left out of the
   block output. The suite decodes [0, 1] as `cat` by default; `decode_cells(..., link01='internal')`
   reads round-2 vectors.
2. [1, 1] is built by no generated file and produced by no committed function, yet the last
   network literal of generate_uni.py@68b327d uses it. `cal_in` reads it as "not a block output";
   `output_channel` (which tests `link.index(1) == 0`) counts it as one. The suite encodes its
   internal add cells as [1, 1] (cal_in's reading, and the same role as round 2's [0, 1]).
3. Block widths: the round-0/1 files use w, w, 2w, 2w, 4w; the round-2 files use w in every
   block, as does the memory model (32 per block). Key `width_mults` (default [1, 1, 2, 2, 4]).
4. A trimmed op in blocks 2 or 4 that reads location 14: the official 1x1 conv has stride 1, so
   its output does not match the other (strided) op and the net fails (e.g. round2/net446.py). The
   suite gives that conv the block's stride. A cell with two trimmed ops is built the same way.
5. A cell that reads a `cat` cell, and a block whose cells are all internal, occur in no file:
   the first reads 2C channels; the second is rejected.
6. The last network literal of generate_uni.py@68b327d (7 cells per block, the final CIFAR net) is
   not shipped as a spec: points 2 and 3 leave its block outputs and its widths open.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from nas_impl.errors import SpecError
from nas_impl.models.registry import SpecModel, normalize_spec, parse_spec, register_family, register_model
from nas_impl.models.spec import CIFAR_SIZE, SpecProblem, did_you_mean, require, require_positive

FAMILY = "memnas-cells"
OPS = ("avg3", "max3", "dil3", "fac7", "sep5", "sep3", "conv3")  # position = official op index
TRIMMED = "none"
COMBINES = ("add", "cat")
NUM_BLOCKS = 5
STRIDED_BLOCKS = (1, 3)  # blocks 2 and 4, from 0
LOCATIONS = 15
BLOCK_INPUT = LOCATIONS - 1
CELL_DIMS = (LOCATIONS, LOCATIONS, LOCATIONS, len(OPS), len(OPS), 2)  # 61 numbers per cell
LINKS = {(1, 0): ("add", False), (0, 1): ("cat", False), (1, 1): ("add", True)}
GRAMMAR = ("'in<i>:<op> + in<j>:<op> -> <add|cat> @<out>' with an optional trailing 'internal', locations "
           f"0-{BLOCK_INPUT} ({BLOCK_INPUT} = the block input), ops " + ", ".join(OPS) + f" or {TRIMMED}"
           " (e.g. 'in14:fac7 + in14:sep3 -> add @13')")
NET53_CELL = "in14:fac7 + in14:sep3 -> add @13"


# Cell strings --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """Two (location, op) inputs, how they combine, where the result goes, and whether the
    result stays out of the block output (`internal`)."""

    in1: int
    op1: str
    in2: int
    op2: str
    combine: str
    out: int
    internal: bool = False


_CELL_RE = re.compile(r"in(\d+):(\w+)\+in(\d+):(\w+)->(\w+)@(\d+)(internal)?")


def _cell_problem(text: Any) -> tuple[Cell | None, str]:
    """(parsed cell, '') or (None, what is wrong and how to write it)."""
    match = _CELL_RE.fullmatch(re.sub(r"\s+", "", text)) if isinstance(text, str) else None
    if match is None:
        return None, f"expected a cell string {GRAMMAR}"
    in1, op1, in2, op2, combine, out, internal = match.groups()
    for op in (op1, op2):
        if op not in OPS + (TRIMMED,):
            return None, f"unknown op '{op}'{did_you_mean(op, OPS + (TRIMMED,))}: expected a cell string {GRAMMAR}"
    if combine not in COMBINES:
        return None, f"unknown combine '{combine}'{did_you_mean(combine, COMBINES)}: expected add or cat"
    if combine == "cat" and internal:
        return None, "an internal cell must add ('cat ... internal' has no official encoding)"
    for loc in (int(in1), int(in2)):
        if loc > BLOCK_INPUT:
            return None, f"input location {loc} is out of range: expected 0-{BLOCK_INPUT} ({BLOCK_INPUT}: block input)"
    if int(out) >= BLOCK_INPUT:
        return None, f"output location {out} is out of range: expected 0-{BLOCK_INPUT - 1}"
    return Cell(int(in1), op1, int(in2), op2, combine, int(out), internal is not None), ""


def parse_cell(text: str) -> Cell:
    """'in14:fac7 + in14:sep3 -> add @13' -> Cell(14, 'fac7', 14, 'sep3', 'add', 13)."""
    cell, problem = _cell_problem(text)
    if problem:
        raise SpecProblem(f"cell string {text!r}", problem)
    return cell


def format_cell(cell: Cell) -> str:
    """The inverse of `parse_cell`, in canonical form."""
    text = f"in{cell.in1}:{cell.op1} + in{cell.in2}:{cell.op2} -> {cell.combine} @{cell.out}"
    return text + " internal" if cell.internal else text


def _block_problem(cells: Sequence[Cell]) -> str:
    """What is wrong with a block's wiring, or ''."""
    if not cells:
        return "a block needs at least one cell"
    written: list[int] = []
    for k, cell in enumerate(cells):
        readable = [BLOCK_INPUT] + written
        for loc in (cell.in1, cell.in2):
            if loc not in readable:
                return (f"cell {k + 1} reads location {loc}, which does not exist yet: a cell reads "
                        f"{BLOCK_INPUT} (the block input) or a location an earlier cell writes: "
                        + ", ".join(map(str, readable)))
        if cell.out in written:
            return f"cell {k + 1} writes location {cell.out} again: give every cell its own output location"
        written.append(cell.out)
    if all(cell.internal for cell in cells):
        return "every cell is internal, so the block has no output: drop 'internal' from at least one cell"
    return ""


# Spec ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemNASCellsSpec:
    """Keys of `memnas-cells`; the defaults build round 0's best network net53 at width 32."""

    num_classes: int = 10
    in_channels: int = 3
    width: int = 32
    width_mults: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    blocks: list[list[str]] = field(default_factory=lambda: [[NET53_CELL] for _ in range(NUM_BLOCKS)])

    @property
    def natural_input(self) -> tuple[int, int, int]:
        return (self.in_channels, CIFAR_SIZE, CIFAR_SIZE)

    def parsed_blocks(self) -> list[list[Cell]]:
        return [[parse_cell(text) for text in block] for block in self.blocks]

    def cell_widths(self) -> list[int]:
        """C of each block: the channels every op of the block makes."""
        return [self.width * mult for mult in self.width_mults]

    def check(self) -> None:
        require_positive(num_classes=self.num_classes, in_channels=self.in_channels, width=self.width)
        require(len(self.width_mults) == NUM_BLOCKS and all(m >= 1 for m in self.width_mults),
                f"key 'width_mults' = {self.width_mults}",
                f"expected {NUM_BLOCKS} positive integers, one per block ([1, 1, 2, 2, 4] in rounds 0-1)")
        require(len(self.blocks) == NUM_BLOCKS, f"key 'blocks' has {len(self.blocks)} entries",
                f"expected {NUM_BLOCKS}: one list of cell strings per block (blocks 2 and 4 run at stride 2)")
        canonical = []
        for b, block in enumerate(self.blocks):
            cells = []
            for c, text in enumerate(block):
                cell, problem = _cell_problem(text)
                if problem:
                    raise SpecProblem(f"key 'blocks' block {b + 1} cell {c + 1} = {text!r}", problem)
                cells.append(cell)
            problem = _block_problem(cells)
            if problem:
                raise SpecProblem(f"key 'blocks' block {b + 1}", problem)
            canonical.append([format_cell(cell) for cell in cells])
        object.__setattr__(self, "blocks", canonical)  # keep the canonical spelling


# The controller's encoding ---------------------------------------------------------------------

def _one_hot(index: int | None, length: int) -> list[float]:
    return [1.0 if i == index else 0.0 for i in range(length)]


def _as_spec(spec: Any) -> MemNASCellsSpec:
    if isinstance(spec, MemNASCellsSpec):
        return spec
    if isinstance(spec, nn.Module):
        spec = spec.to_spec()
    parsed = parse_spec(spec)
    if not isinstance(parsed, MemNASCellsSpec):
        raise SpecError(f"the cell encoding needs a '{FAMILY}' spec, not family '{normalize_spec(spec)['family']}'")
    return parsed


def encode_cells(spec: Any) -> list[list[list[float]]]:
    """Per block, per cell, the 61-number vector of the official encoding (module docstring).
    `spec`: a spec dict, model name, YAML path, spec dataclass or built model."""
    links = {value: key for key, value in LINKS.items()}
    blocks = []
    for cells in _as_spec(spec).parsed_blocks():
        vectors = []
        for cell in cells:
            ops = [None if op == TRIMMED else OPS.index(op) for op in (cell.op1, cell.op2)]
            vectors.append(_one_hot(cell.in1, LOCATIONS) + _one_hot(cell.in2, LOCATIONS)
                           + _one_hot(cell.out, LOCATIONS) + _one_hot(ops[0], len(OPS))
                           + _one_hot(ops[1], len(OPS)) + [float(v) for v in links[(cell.combine, cell.internal)]])
        blocks.append(vectors)
    return blocks


def _split(vector: Any, where: str) -> list[list[int]]:
    """A cell's six parts, from 61 numbers or from the official six lists; each entry 0 or 1."""
    if isinstance(vector, (list, tuple)) and len(vector) == len(CELL_DIMS) and all(
            isinstance(part, (list, tuple)) for part in vector):
        parts = [list(part) for part in vector]
    elif isinstance(vector, (list, tuple)) and len(vector) == sum(CELL_DIMS):
        starts = [sum(CELL_DIMS[:i]) for i in range(len(CELL_DIMS) + 1)]
        parts = [list(vector[a:b]) for a, b in zip(starts, starts[1:])]
    else:
        raise SpecError(f"{where}: expected {sum(CELL_DIMS)} numbers, or six lists of lengths "
                        + ", ".join(map(str, CELL_DIMS)))
    for part, length in zip(parts, CELL_DIMS):
        if len(part) != length or any(v not in (0, 1) for v in part):
            raise SpecError(f"{where}: {part} is not a 0/1 vector of length {length}: expected six vectors of "
                            "lengths " + ", ".join(map(str, CELL_DIMS)))
    return [[int(v) for v in part] for part in parts]


def _decode_cell(vector: Any, where: str, link01: str) -> str:
    in1, in2, out, op1, op2, link = _split(vector, where)
    for name, part in (("input-1 location", in1), ("input-2 location", in2), ("output location", out)):
        if sum(part) != 1:
            raise SpecError(f"{where}: the {name} {part} must have exactly one 1 (a location 0-{BLOCK_INPUT})")
    ops = []
    for name, part in (("op 1", op1), ("op 2", op2)):
        if sum(part) > 1:
            raise SpecError(f"{where}: {name} {part} has several 1s: expected one (an op) or none (trimmed)")
        ops.append(OPS[part.index(1)] if 1 in part else TRIMMED)
    if tuple(link) not in LINKS:
        raise SpecError(f"{where}: combine {link} is not [1, 0] (add), [0, 1] (cat) or [1, 1] (internal add)")
    combine, internal = LINKS[tuple(link)]
    if tuple(link) == (0, 1) and link01 == "internal":
        combine, internal = "add", True
    return format_cell(Cell(in1.index(1), ops[0], in2.index(1), ops[1], combine, out.index(1), internal))


def decode_cells(vectors: Sequence[Sequence[Any]], width: int, num_classes: int = 10, *, in_channels: int = 3,
                 width_mults: Sequence[int] = (1, 1, 2, 2, 4),
                 link01: Literal["cat", "internal"] = "cat") -> dict[str, Any]:
    """The full spec of per-block lists of cell vectors (61 numbers, or the official six lists
    per cell). `link01` reads the combine [0, 1] as the round-0/1 files build it ('cat') or as
    the round-2 files do ('internal': an add left out of the block output); with round-2 vectors
    give also width_mults=[1, 1, 1, 1, 1]."""
    if link01 not in ("cat", "internal"):
        raise SpecError(f"link01 = {link01!r}: expected 'cat' (rounds 0-1) or 'internal' (round 2)")
    blocks = [[_decode_cell(v, f"block {b + 1} cell {c + 1}", link01) for c, v in enumerate(block)]
              for b, block in enumerate(vectors)]
    return normalize_spec({"family": FAMILY, "num_classes": num_classes, "in_channels": in_channels,
                           "width": width, "width_mults": list(width_mults), "blocks": blocks})


# Modules -------------------------------------------------------------------------------------

def _conv_bn_relu(cin: int, cout: int, kernel: int | tuple[int, int], stride: int,
                  padding: int | tuple[int, int], dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding, dilation), nn.BatchNorm2d(cout), nn.ReLU()]


def cell_op(op: str, cin: int, cout: int, stride: int) -> nn.Sequential:
    """One op of the table in the module docstring."""
    if op == TRIMMED:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, stride))
    if op in ("avg3", "max3"):
        pool = nn.AvgPool2d(3, stride, 1) if op == "avg3" else nn.MaxPool2d(3, stride, 1)
        return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), pool)
    if op == "dil3":
        return nn.Sequential(*_conv_bn_relu(cin, cout, 3, stride, 2, dilation=2))
    if op == "fac7":
        return nn.Sequential(*_conv_bn_relu(cin, cout, 1, stride, 0), *_conv_bn_relu(cout, cout, (1, 7), 1, (0, 3)),
                             *_conv_bn_relu(cout, cout, (7, 1), 1, (3, 0)))
    if op in ("sep3", "sep5"):
        k = int(op[-1])
        return nn.Sequential(nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin), nn.BatchNorm2d(cin),
                             nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU())
    if op == "conv3":
        return nn.Sequential(*_conv_bn_relu(cin, cout, 3, stride, 1))
    raise SpecProblem(f"op {op!r}", "expected one of " + ", ".join(OPS) + f" or {TRIMMED}")


class MemNASCell(nn.Module):
    """op1(first input) and op2(second input), added or concatenated."""

    def __init__(self, cell: Cell, cin1: int, cin2: int, width: int, stride1: int, stride2: int) -> None:
        super().__init__()
        self.concat = cell.combine == "cat"
        self.op1 = cell_op(cell.op1, cin1, width, stride1)
        self.op2 = cell_op(cell.op2, cin2, width, stride2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x, y = self.op1(a), self.op2(b)
        return torch.cat((x, y), 1) if self.concat else x + y


class MemNASBlock(nn.Module):
    """A chain of cells over locations; the output concatenates the non-internal cell outputs."""

    def __init__(self, cells: Sequence[Cell], cin: int, width: int, stride: int) -> None:
        super().__init__()
        self.wiring = [(cell.in1, cell.in2, cell.out) for cell in cells]
        self.outputs = [cell.out for cell in cells if not cell.internal]
        channels = {BLOCK_INPUT: cin}
        modules = []
        for cell in cells:
            strides = [stride if loc == BLOCK_INPUT else 1 for loc in (cell.in1, cell.in2)]
            modules.append(MemNASCell(cell, channels[cell.in1], channels[cell.in2], width, *strides))
            channels[cell.out] = 2 * width if cell.combine == "cat" else width
        self.cells = nn.ModuleList(modules)
        self.out_channels = sum(channels[loc] for loc in self.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = {BLOCK_INPUT: x}
        for (in1, in2, out), cell in zip(self.wiring, self.cells):
            states[out] = cell(states[in1], states[in2])
        outs = [states[loc] for loc in self.outputs]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


@register_family(FAMILY)
class MemNASCells(SpecModel):
    """`blocks` (5 MemNASBlocks) -> `pool` (2x2 max pool) -> flatten -> `classifier` (Linear)."""

    Spec = MemNASCellsSpec

    def __init__(self, spec: MemNASCellsSpec) -> None:
        super().__init__(spec)
        blocks, cin = [], spec.in_channels
        for b, (cells, width) in enumerate(zip(spec.parsed_blocks(), spec.cell_widths())):
            blocks.append(MemNASBlock(cells, cin, width, 2 if b in STRIDED_BLOCKS else 1))
            cin = blocks[-1].out_channels
        self.blocks = nn.Sequential(*blocks)
        final = CIFAR_SIZE // 2 ** (len(STRIDED_BLOCKS) + 1)
        # The official 2x2 max pool, 8x8 -> 4x4 at 32 px; adaptive, so that other sizes (28-px
        # Fashion-MNIST at smoke scale) reach the same 4x4 head (at 32 px it is the same pooling).
        self.pool = nn.AdaptiveMaxPool2d(final)
        self.classifier = nn.Linear(cin * final * final, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.blocks(x)), 1))


register_model("memnas-net53-cifar", family=FAMILY)
