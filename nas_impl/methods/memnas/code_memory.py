"""The MemNAS code's memory proxies on `memnas-cells` specs: `Network.cal_weight` (weight count)
and `Network.cal_in` (feature count), with the helpers they use (`output_channel`,
`ini_mul_channel`), from utils/generate_uni.py of MemNAS/MemNAS at 68b327d
(../shared/reference/memnas.md §5.3). Both work on the controller's cell vectors (`encode_cells`:
input-1, input-2 and output location, op 1, op 2, link) and give the official numbers for the
same network literal. Every block has `channels` channels (the code's `blobk*_channel = 32`,
whatever the spec's width); results are element counts, not bytes.

The official arithmetic is kept as it is, quirks included:

Block outputs (`output_channel`): a block outputs `channels` x the number of its cells whose link
vector starts with 1: [1, 0] (add) and [1, 1] (internal add) count, [0, 1] (cat) does not.

`cal_weight` sums, over the two ops of every cell of every block, a count that depends on the op
(trimmed, all-zero op vector: 0) and on whether the op "reads the block input":

1. That test compares the op's input location with 6, not with 14 (the block input). So an op
   that reads the block input gets the interior count, and an op that reads location 6 (the
   output of cell 8 in the generator's numbering) gets the block-input count. Every real network
   (the round-0 to round-4 bests, the final literal) therefore gets interior counts only.
2. Counts with input channels Cin and block channels C (interior: Cin = C): conv3 and dil3
   Cin 9 C; sep3 9 Cin + Cin C; sep5 25 Cin + Cin C; fac7 7 Cin C + 7 C^2 (not its real
   1x1 -> 1x7 -> 7x1 shape); avg3 and max3 Cin C.
3. Blocks 2-5: the "block input" Cin is the previous block's output channels (above).
4. Block 1: the "block input" Cin is 3 (the image), with two odd constants: sep3 as op 1 counts
   3*3*3*3 + 3 C (op 2: 3*3*3 + 3 C), and avg3 / max3 as op 2 count C^2 (op 1: 3 C).

`cal_in` simulates block 1 only (the other blocks are ignored) as a graph of 3 nodes per cell, k
from 1: op nodes 3k-2 and 3k-1, which read their location, and the combine node 3k. It runs 10
steps, scores each (and the start) and returns the highest score x 32 x 32 (a fixed 32x32 map,
independent of `channels`):

5. Location L is read as node 3 (14 - L), the combine node of cell 14 - L: the generator's
   numbering (cell k writes 14 - k). A cell that writes elsewhere is misread; a node number beyond
   the graph makes the official code fail (IndexError: `NasReproError` here). The block input
   (14) is node 0.
6. A node's score is the sum over its inputs of (channels of that input + C), where the block
   input has block 1's *output* channels (`block1_output`, not the image's 3) and every other
   node C (`blobk2_channel`): an op node on the block input scores block1_output + C, any other
   op node 2 C, a combine node 4 C. Ops, trimmed ones included, do not matter.
7. A cell's combine node is a block output (consumer "0") unless its link is [1, 1]; [0, 1]
   (cat) is an output here although `output_channel` does not count it. Its consumers are then
   the op nodes that read its location, in node order.
8. Start: the op nodes on the block input are live (state 1) and in the live list; the score is
   that of the live list (with repeats).
9. A step first updates every node from the previous step's states: a node whose inputs are all
   live becomes live and is appended to the live list, even if it was already live or done, so
   a node can be in the list several times and is then scored several times. "Inputs all live"
   for an op node on the block input looks at node 0, which Python reads as the last node
   (`ope[-1]`: the last cell's combine node). The step is then scored.
10. Then, for every live node: if it has a single consumer that is not "0", it is done (state 2)
    and removed from the live list (one copy) when that consumer is live; if its consumers are
    just "0" (a block output nobody reads) it is done but stays in the list (scored at every
    later step); otherwise it is done, and stays in the list, when its consumer at position 1 is
    live: its first reader for an output cell, its second for a [1, 1] cell with several
    readers. A live [1, 1] cell that nobody reads has no position 1: the official code fails
    (IndexError), `NasReproError` here.

No integer division occurs in these functions, so Python 2 and 3 give the same numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from nas_impl.errors import NasReproError
from nas_impl.models.memnas_cells import BLOCK_INPUT, CELL_DIMS, OPS, encode_cells

IMAGE_CHANNELS = 3  # block 1's "block input" in cal_weight
WEIGHT_INPUT_LOCATION = 6  # cal_weight's block-input test (quirk 1)
FEATURE_MAP = 32 * 32  # cal_in's final factor
FEATURE_STEPS = 10
INTERNAL_LINK = (1, 1)
_OUTPUT = 0  # cal_in's "block output" consumer, and its node number for the block input
_IDLE, _LIVE, _DONE = 0, 1, 2


@dataclass(frozen=True)
class _Cell:
    """One cell's six official vectors, as indices: locations, ops (None: trimmed) and the link."""

    in1: int
    in2: int
    out: int
    op1: str | None
    op2: str | None
    link: tuple[int, ...]


def _split(vector: list[float]) -> _Cell:
    parts, start = [], 0
    for length in CELL_DIMS:
        parts.append([int(v) for v in vector[start:start + length]])
        start += length
    in1, in2, out, op1, op2, link = parts
    ops = [OPS[part.index(1)] if 1 in part else None for part in (op1, op2)]
    return _Cell(in1.index(1), in2.index(1), out.index(1), ops[0], ops[1], tuple(link))


def _blocks(spec: Any) -> list[list[_Cell]]:
    return [[_split(vector) for vector in block] for block in encode_cells(spec)]


def _check_channels(channels: int) -> None:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise NasReproError(f"MemNAS code memory: channels = {channels!r}: expected a positive integer "
                            "(the official code uses 32 in every block)")


def _block_output_channels(cells: list[_Cell], channels: int) -> int:
    """`output_channel`: channels x the cells whose link starts with 1 ([1, 0] and [1, 1])."""
    return channels * sum(1 for cell in cells if cell.link[0] == 1)


def _op_weights(op: str | None, cin: int, c: int) -> int:
    """Quirk 2's table."""
    if op is None:
        return 0
    if op in ("conv3", "dil3"):
        return cin * 9 * c
    if op in ("sep3", "sep5"):
        return cin * int(op[-1]) ** 2 + cin * c
    if op == "fac7":
        return cin * 7 * c + c * 7 * c
    return cin * c  # avg3, max3: their 1x1 conv


def _block1_input_weights(op: str | None, which: int, c: int) -> int:
    """Block 1, an op on location 6 (quirk 4): the table at Cin = 3 but for two constants."""
    if which == 1 and op == "sep3":
        return 3 * 3 * 3 * 3 + IMAGE_CHANNELS * c
    if which == 2 and op in ("avg3", "max3"):
        return c * c
    return _op_weights(op, IMAGE_CHANNELS, c)


def code_weight_count(spec: Any, channels: int = 32) -> int:
    """`Network.cal_weight`: the official weight count of a `memnas-cells` spec (elements)."""
    _check_channels(channels)
    total, previous_output = 0, 0
    for b, cells in enumerate(_blocks(spec)):
        for cell in cells:
            for which, (location, op) in enumerate(((cell.in1, cell.op1), (cell.in2, cell.op2)), start=1):
                if location != WEIGHT_INPUT_LOCATION:
                    total += _op_weights(op, channels, channels)
                elif b == 0:
                    total += _block1_input_weights(op, which, channels)
                else:
                    total += _op_weights(op, previous_output, channels)
        previous_output = _block_output_channels(cells, channels)
    return total


@dataclass(frozen=True)
class _Node:
    inputs: tuple[int, ...]  # node numbers; 0: the block input
    consumers: tuple[int, ...]  # node numbers; 0: the block output


def _feature_graph(cells: list[_Cell]) -> list[_Node]:
    """Block 1's nodes, node k at index k - 1 (quirks 5 and 7)."""
    def reads(location: int) -> int:
        return _OUTPUT if location == BLOCK_INPUT else 3 * (BLOCK_INPUT - location)

    inputs: list[tuple[int, ...]] = []
    for k, cell in enumerate(cells, start=1):
        inputs += [(reads(cell.in1),), (reads(cell.in2),), (3 * k - 2, 3 * k - 1)]
    for number, node_inputs in enumerate(inputs, start=1):
        if node_inputs[0] > len(inputs):
            cell = cells[(number - 1) // 3]
            location = cell.in1 if number % 3 == 1 else cell.in2
            raise NasReproError(
                f"MemNAS cal_in: block 1 cell {(number + 2) // 3} reads location {location}, which the code takes "
                f"for node {node_inputs[0]} (the combine of cell {BLOCK_INPUT - location}), but block 1 has "
                f"only {len(cells)} cells: the official code fails here (IndexError); write cell k's output "
                f"at location {BLOCK_INPUT} - k as the generator does")
    nodes = []
    for k, cell in enumerate(cells, start=1):
        readers = tuple(n for n, node_inputs in enumerate(inputs, start=1) if node_inputs == (3 * k,))
        output = () if cell.link == INTERNAL_LINK else (_OUTPUT,)
        nodes += [_Node(inputs[3 * k - 3], (3 * k,)), _Node(inputs[3 * k - 2], (3 * k,)),
                  _Node(inputs[3 * k - 1], output + readers)]
    return nodes


def code_feature_count(spec: Any, channels: int = 32) -> int:
    """`Network.cal_in`: the official feature count of a `memnas-cells` spec (elements)."""
    _check_channels(channels)
    block1 = _blocks(spec)[0]
    nodes = _feature_graph(block1)
    input_channels = _block_output_channels(block1, channels)
    scores = [sum(input_channels + channels if ref == _OUTPUT else 2 * channels for ref in node.inputs)
              for node in nodes]

    def state(states: list[int], ref: int) -> int:
        return states[ref - 1]  # ref 0 -> states[-1], the last node (quirk 9)

    states = [_LIVE if node.inputs == (_OUTPUT,) else _IDLE for node in nodes]
    live = Counter(n for n, s in enumerate(states) if s == _LIVE)  # node index -> copies in the live list

    def score() -> int:
        return sum(copies * scores[n] for n, copies in live.items()) * FEATURE_MAP

    peak = score()
    for _ in range(FEATURE_STEPS):
        stepped = list(states)
        for n, node in enumerate(nodes):
            if all(state(states, ref) == _LIVE for ref in node.inputs):
                stepped[n] = _LIVE
                live[n] += 1
        peak = max(peak, score())
        states = list(stepped)
        for n, node in enumerate(nodes):
            if stepped[n] != _LIVE:
                continue
            if len(node.consumers) == 1 and node.consumers[0] != _OUTPUT:
                if state(stepped, node.consumers[0]) == _LIVE:
                    states[n] = _DONE
                    live[n] -= 1
            elif len(node.consumers) == 1:
                states[n] = _DONE
            elif not node.consumers:
                raise NasReproError(
                    f"MemNAS cal_in: block 1 cell {n // 3 + 1} is internal ([1, 1]) and no cell reads it: the "
                    "official code fails on such a network (IndexError on its empty consumer list); read the "
                    "cell's output from a later cell or keep it in the block output")
            elif state(stepped, node.consumers[1]) == _LIVE:
                states[n] = _DONE
    return int(peak)
