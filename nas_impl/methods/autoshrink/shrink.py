"""AutoShrink's shrinking loop, apart from how a candidate is trained (lordzth666/AutoShrink
`searching/cnn/metagraph.py` `auto_shrink`, `searching/rnn/autoshrink_rnn.py` `auto_shrink`).

From a DAG (the complete one at the start), each step draws k = min(k, edges) distinct edges
reachable from node 0 (the official code shuffles the edge queue and takes its head, shuffling
the rest after each draw: a uniform draw without replacement), scores the graph minus each one,
removes the edge whose removal scored highest, and drops the edges no longer reachable from
node 0. It continues while more than round(max_edges x keep_fraction) edges remain, and records
every step, so that a snapshot can be chosen afterwards (the official code pickles a
`graph-<edge ratio>` per step and leaves the choice to the user).

A score that is NaN (a candidate whose training diverged: the official RNN estimator returns NaN
perplexity) counts as the worst here. The official code ranks with `np.argsort`, which sorts NaN
last, so there a diverged candidate would be the one removed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas_impl.models.dag import Edge, reachable_edges


def cnn_score(accuracy: float, macs: float) -> float:
    """The CNN search's objective (`metagraph.py` `metric_fn`): accuracy as a fraction, MACs."""
    return accuracy - 0.1 * (math.log10(macs) - 6)


def rnn_score(ppl: float, flops: float) -> float:
    """The RNN search's objective (`autoshrink_rnn.py` `metric_fn`): validation perplexity, FLOPs."""
    return (200 - ppl) * 0.25 - (math.log10(flops) - 6)


def rnn_flops(edges: Sequence[Sequence[int]], hidden: int) -> int:
    """The RNN search's cost (`searching/rnn/model.py` `compute_flops`): reachable edges x hidden^2."""
    return len(reachable_edges(edges)) * hidden * hidden


@dataclass(frozen=True)
class Candidate:
    removed: Edge
    score: float
    details: dict[str, Any] = field(default_factory=dict)  # accuracy or ppl, MACs or FLOPs, epochs, seconds


@dataclass(frozen=True)
class ShrinkStep:
    step: int  # 1-based
    candidates: tuple[Candidate, ...]
    removed: Edge  # the best candidate's edge
    edges: list[Edge]  # the graph after the removal and pruning
    edge_ratio: float  # edges left / the start's edges (the official snapshot name)

    @property
    def best(self) -> Candidate:
        return next(c for c in self.candidates if c.removed == self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "removed": self.removed, "edges": self.edges, "edge_ratio": self.edge_ratio,
                "best_score": self.best.score,
                "candidates": [{"removed": c.removed, "score": c.score, **c.details} for c in self.candidates]}


def best_candidate(candidates: Sequence[Candidate]) -> Candidate:
    """The highest score, NaN counting as the worst; the first of equal ones."""
    return max(candidates, key=lambda c: -math.inf if math.isnan(c.score) else c.score)


class Shrinker:
    """The loop's state: the current edges, the steps so far, and the draw of the next candidates."""

    def __init__(self, edges: Sequence[Sequence[int]], *, k: int, keep_fraction: float, seed: int) -> None:
        self.edges = reachable_edges(edges)
        self.max_edges = len(self.edges)
        self.threshold = round(self.max_edges * keep_fraction)
        self.k = k
        self.rng = random.Random(seed)
        self.steps: list[ShrinkStep] = []

    @property
    def done(self) -> bool:
        return len(self.edges) <= self.threshold

    def propose(self) -> list[Edge]:
        """The edges whose removal the next step scores: k distinct reachable ones, drawn at random."""
        return self.rng.sample(self.edges, min(self.k, len(self.edges)))

    def without(self, edge: Edge) -> list[Edge]:
        """The current graph minus `edge` (unreachable edges included: the cell builder drops them)."""
        return [e for e in self.edges if e != edge]

    def apply(self, candidates: Sequence[Candidate]) -> ShrinkStep:
        best = best_candidate(candidates)
        self.edges = reachable_edges(self.without(best.removed))
        step = ShrinkStep(len(self.steps) + 1, tuple(candidates), best.removed, self.edges,
                          len(self.edges) / self.max_edges)
        self.steps.append(step)
        return step

    def run(self, score: Callable[[list[Edge], Edge], Candidate]) -> list[ShrinkStep]:
        """Shrink to the threshold; `score(graph, removed edge)` trains and scores one candidate
        (the method trains a step's candidates together; this is the plain loop for tests)."""
        while not self.done:
            self.apply([score(self.without(edge), edge) for edge in self.propose()])
        return self.steps


def select_step(steps: Sequence[ShrinkStep], rule: str, ratio: float | None = None) -> ShrinkStep:
    """The snapshot a recipe keeps: `best_score` (the step whose removal scored highest) or
    `edge_ratio` (the step whose edge ratio is nearest `ratio`, e.g. the README's graph-0.29)."""
    if not steps:
        raise ValueError("no shrink step was run: the graph was already at the keep fraction")
    if rule == "best_score":
        return max(steps, key=lambda s: -math.inf if math.isnan(s.best.score) else s.best.score)
    if rule == "edge_ratio":
        if ratio is None:
            raise ValueError("rule 'edge_ratio' needs a ratio")
        return min(steps, key=lambda s: abs(s.edge_ratio - ratio))
    raise ValueError(f"unknown snapshot rule {rule!r}: use best_score or edge_ratio")
