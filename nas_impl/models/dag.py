"""Cells as directed acyclic graphs over numbered nodes (AutoShrink's CNN and RNN cells).

An edge [i, j] (i < j) feeds node i into node j; node 0 is the cell's input. These functions are
pure Python, shared by the cell families and by the shrinking search, which removes edges one at
a time. The official code (lordzth666/AutoShrink `optimize_mask`, `get_leaf`) keeps only the edges
reachable from node 0, and a cell's output reads its *leaves*: reachable nodes with no outgoing edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Edge = list[int]  # [from, to]


def complete_dag(nodes: int) -> list[Edge]:
    """Every forward edge i -> j of `nodes` nodes, in (i, j) order: the shrinking search's start."""
    return [[i, j] for i in range(nodes) for j in range(i + 1, nodes)]


def edge_problem(edges: Iterable[Sequence[int]], nodes: int) -> str | None:
    """Why `edges` is not a valid edge list over `nodes` nodes, or None."""
    seen: set[tuple[int, int]] = set()
    for edge in edges:
        if len(edge) != 2:
            return f"edge {list(edge)} is not a pair [from, to]"
        i, j = edge
        if not 0 <= i < j < nodes:
            return f"edge {list(edge)} must go forward between nodes 0..{nodes - 1} (from < to)"
        if (i, j) in seen:
            return f"edge {list(edge)} appears twice"
        seen.add((i, j))
    return None


def reachable_edges(edges: Iterable[Sequence[int]]) -> list[Edge]:
    """The edges reachable from node 0, sorted and without repeats (the official `optimize_mask`)."""
    reached, kept = {0}, []
    for i, j in sorted({(int(a), int(b)) for a, b in edges}):
        if i in reached:  # sorted by source, and i < j: every edge into i was seen before i's own
            reached.add(j)
            kept.append([i, j])
    return kept


def reachable_nodes(edges: Iterable[Sequence[int]]) -> list[int]:
    return sorted({0} | {j for _, j in reachable_edges(edges)})


def leaves(edges: Iterable[Sequence[int]]) -> list[int]:
    """Reachable nodes with no outgoing edge (the official `get_leaf`): what the cell outputs."""
    kept = reachable_edges(edges)
    sources = {i for i, _ in kept}
    return [n for n in reachable_nodes(kept) if n not in sources]
