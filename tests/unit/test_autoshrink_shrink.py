"""AutoShrink's shrinking loop (nas_impl/methods/autoshrink/shrink.py) against the official rules
(lordzth666/AutoShrink searching/cnn/metagraph.py and searching/rnn/autoshrink_rnn.py): the two
objectives on hand values, one step removes the best-scoring edge and prunes what it disconnects,
the loop stops at round(max_edges x keep_fraction), and the snapshot rules."""

from __future__ import annotations

import math

import pytest

from nas_impl.methods.autoshrink.shrink import (
    Candidate, Shrinker, best_candidate, cnn_score, rnn_flops, rnn_score, select_step,
)
from nas_impl.models.dag import complete_dag


def test_cnn_score_on_hand_values():
    assert cnn_score(0.5, 1e6) == pytest.approx(0.5)  # log10(1e6) - 6 = 0
    assert cnn_score(0.62, 1e7) == pytest.approx(0.52)  # one decade more costs 0.1
    assert cnn_score(0.62, 1e5) == pytest.approx(0.72)


def test_rnn_score_and_flops_on_hand_values():
    assert rnn_score(100.0, 1e6) == pytest.approx(25.0)  # (200 - 100) / 4
    assert rnn_score(120.0, 1e8) == pytest.approx(18.0)  # 20 - 2
    assert rnn_flops([[0, 1], [1, 2], [3, 4]], hidden=100) == 2 * 100 * 100  # 3 -> 4 is unreachable


def test_nan_counts_as_the_worst_and_ties_keep_the_first():
    cands = [Candidate([0, 1], math.nan), Candidate([0, 2], 0.3), Candidate([1, 2], 0.3), Candidate([0, 3], -1.0)]
    assert best_candidate(cands).removed == [0, 2]


def test_a_step_removes_the_best_edge_and_prunes_what_it_disconnects():
    shrinker = Shrinker([[0, 1], [1, 2], [1, 3], [0, 3]], k=10, keep_fraction=0.0, seed=0)
    assert sorted(shrinker.propose()) == [[0, 1], [0, 3], [1, 2], [1, 3]]  # k > edges: every edge, once
    scores = {(0, 1): 0.9, (1, 2): 0.1, (1, 3): 0.2, (0, 3): 0.3}
    step = shrinker.apply([Candidate(e, scores[tuple(e)]) for e in shrinker.propose()])
    assert step.removed == [0, 1]
    assert step.edges == [[0, 3]]  # 1 -> 2 and 1 -> 3 lost their source
    assert step.edge_ratio == pytest.approx(1 / 4) and step.best.score == 0.9


def test_the_loop_draws_k_distinct_edges_and_stops_at_the_keep_fraction():
    seen = []

    def score(graph, removed):
        assert removed not in graph and len(graph) == len(shrinker.edges) - 1
        seen.append(removed)
        return Candidate(removed, -removed[0] - 0.1 * removed[1])  # removing late edges scores best

    shrinker = Shrinker(complete_dag(8), k=10, keep_fraction=0.25, seed=3)
    assert shrinker.max_edges == 28 and shrinker.threshold == 7
    steps = shrinker.run(score)
    assert len(shrinker.edges) <= 7 < len(steps[-2].edges)
    assert len(seen) == sum(len(s.candidates) for s in steps)
    for step in steps:
        removed = [c.removed for c in step.candidates]
        assert len(removed) == len({tuple(e) for e in removed}) == min(10, len(step.edges) + 1 + _pruned(step, steps))
        assert step.removed == max(removed, key=lambda e: -e[0] - 0.1 * e[1])


def _pruned(step, steps):
    """Edges a step's removal disconnected besides the removed one."""
    before = steps[step.step - 2].edges if step.step > 1 else complete_dag(8)
    return len(before) - 1 - len(step.edges)


def test_the_draws_are_seeded():
    first = Shrinker(complete_dag(6), k=4, keep_fraction=0.5, seed=7).propose()
    assert first == Shrinker(complete_dag(6), k=4, keep_fraction=0.5, seed=7).propose()
    assert first != Shrinker(complete_dag(6), k=4, keep_fraction=0.5, seed=8).propose()


def test_snapshot_rules():
    shrinker = Shrinker(complete_dag(5), k=3, keep_fraction=0.0, seed=0)
    best = {0: 0.1, 1: 0.7, 2: 0.4}
    steps = shrinker.run(lambda graph, removed: Candidate(removed, best.get(len(shrinker.steps), 0.0)))
    assert select_step(steps, "best_score").step == 2
    target = steps[3].edge_ratio
    assert select_step(steps, "edge_ratio", target).step == 4
    with pytest.raises(ValueError, match="unknown snapshot rule"):
        select_step(steps, "newest")
    with pytest.raises(ValueError, match="no shrink step"):
        select_step([], "best_score")
