"""A MemNAS round's candidates: round 0's one-cell networks, then, from the previous round's best
network, the grown and trimmed ones, as the official generator makes them (`Network.gen_big`, `remove`, `remove_fin` in utils/generate_uni.py of MemNAS/MemNAS at
68b327d; ../shared/reference/memnas.md §3.3), on `memnas-cells` specs:

- `initial`: round 0, the 98 networks of models/networks/round0/net1..98.py (HEAD ce414e4): one cell
  in every block, both ops on the block input, written at location 13, for op 1 x op 2 x combine
  (add, cat), numbered in that loop order (net n = 14 op1 + 2 op2 + combine + 1: net53 is fac7 +
  sep3, add). The committed `_gen_initial_networks` loops over `self.link = 1` combine only; the
  98 files show the generator that made them also built `cat` (memnas.md §2).
- `grow`: one new cell appended to *every* block, for every op 1 x op 2 (the 7 ops) x input 1 x
  input 2, inputs among block 1's locations (the block input, 14, then each cell's output in cell
  order), combine `add` only (the code's `self.link = 1`), written at the location after block 1's
  last cell (`increase_location`: one lower). 49 x L^2 candidates for L locations, in the code's
  loop order (op 1, op 2, input 1, input 2).
- `trim_ops`: one op of one cell of one block trimmed (`none`: the all-zero op vector), block by
  block, cell by cell, op 1 before op 2; ops already trimmed are skipped.
- `trim_edges`: one cell of one block whose output another cell of that block reads is taken out
  of the block output (`remove_fin` sets its combine to [0, 1], which the round-2 nets build as an
  add kept internal: the suite writes `add ... internal`); the code does not skip a cell that is
  already internal, and neither does this (that candidate equals its base).

Grown cells read block 1's locations in every block, as the code does; where another block has
fewer cells (after a trim), such a candidate does not build, and the spec's check says why.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from nas_impl.models.memnas_cells import BLOCK_INPUT, COMBINES, OPS, TRIMMED, Cell, format_cell, parse_cell


def _cells(spec: dict[str, Any]) -> list[list[Cell]]:
    return [[parse_cell(text) for text in block] for block in spec["blocks"]]


def _with_blocks(spec: dict[str, Any], blocks: list[list[Cell]]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    out["blocks"] = [[format_cell(cell) for cell in block] for block in blocks]
    return out


def initial(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = BLOCK_INPUT - 1
    return [_with_blocks(spec, [[Cell(BLOCK_INPUT, op1, BLOCK_INPUT, op2, combine, out)]] * len(spec["blocks"]))
            for op1 in OPS for op2 in OPS for combine in COMBINES]


def grow(spec: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _cells(spec)
    first = blocks[0]
    locations = [BLOCK_INPUT, *(cell.out for cell in first)]
    out = (first[-1].out if first else BLOCK_INPUT) - 1
    grown = []
    for op1 in OPS:
        for op2 in OPS:
            for in1 in locations:
                for in2 in locations:
                    cell = Cell(in1, op1, in2, op2, "add", out)
                    grown.append(_with_blocks(spec, [[*block, cell] for block in blocks]))
    return grown


def trim_ops(spec: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _cells(spec)
    trimmed = []
    for b, block in enumerate(blocks):
        for c, cell in enumerate(block):
            for field in ("op1", "op2"):
                if getattr(cell, field) != TRIMMED:
                    changed = copy.deepcopy(blocks)
                    changed[b][c] = dataclasses.replace(cell, **{field: TRIMMED})
                    trimmed.append(_with_blocks(spec, changed))
    return trimmed


def trim_edges(spec: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _cells(spec)
    trimmed = []
    for b, block in enumerate(blocks):
        read = {loc for cell in block for loc in (cell.in1, cell.in2)}
        for c, cell in enumerate(block):
            if cell.out in read:
                changed = copy.deepcopy(blocks)
                changed[b][c] = dataclasses.replace(cell, combine="add", internal=True)
                trimmed.append(_with_blocks(spec, changed))
    return trimmed


def round_candidates(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every candidate of one round: grown, then op-trimmed, then edge-trimmed."""
    return grow(spec) + trim_ops(spec) + trim_edges(spec)
