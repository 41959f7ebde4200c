"""MemNAS's search work, torch-free (`SearchWork` of its MethodInfo; `nasrepro cost` prices it).

Stage `search`: round 0's networks, then each round's grown and trimmed candidates (all of them
before the controller takes over, then its top k and the audited ones), each trained from scratch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_impl.methods.work_units import (EVAL_COST, Network, Part, SearchWork, StageWork, data_size, epochs_text,
                                         thousands, train_subset)


def memnas_candidates(settings: Any, base_spec: Mapping[str, Any]) -> tuple[list[int], str]:
    """Networks trained in each round (0..rounds) and how round 1's count follows from the base."""
    blocks = base_spec.get("blocks") or [[]]
    cells = len(blocks[0]) if settings.round0 == 0 else 1  # round 0's nets have one cell a block
    counts = [settings.round0 or 1]
    how = ""
    for r in range(1, settings.rounds + 1):
        if r < settings.controller_from:  # every candidate: 49 grown per pair of block-1 locations + op trims
            c = cells + r - 1
            n = 49 * (1 + c) ** 2 + 2 * c * len(blocks)
            how = how or (f"round {r}: all {n} candidates of a {c}-cell net (49 x {1 + c}^2 grown + "
                          f"{2 * c * len(blocks)} op-trimmed; memnas/candidates.py)")
            counts.append(n)
        else:
            counts.append(settings.k + settings.audit)
    return counts, how


def stages(recipe: Any, base: Network) -> dict[str, StageWork]:
    w, s = recipe.weights, recipe.memnas
    size = data_size(base.dataset)
    n = train_subset(w, size)
    train, valid = (n - s.valid_size, s.valid_size) if s.valid_from == "train" else (n, size.test)
    counts, how = memnas_candidates(s, base.spec)
    total = sum(counts)
    work = total * w.epochs * train
    parts = (Part(base, work), Part(base, total * w.epochs * valid, EVAL_COST))
    basis = (f"{total} networks trained ({' + '.join(map(str, counts))} in rounds 0-{s.rounds}: round 0 "
             f"{counts[0]}; {how + '; ' if how else ''}from round {s.controller_from} the top {s.k}"
             f"{f' + {s.audit} audited' if s.audit else ''}) x {epochs_text(w.epochs)} x {thousands(train)} images + "
             f"{thousands(valid)} scored at 1/3; every net costed as the round-0 base (later rounds' nets are larger: a "
             "lower bound); the controller's fits are not counted")
    return {"search": StageWork("search", work + total * w.epochs * valid, parts, basis, base)}


SEARCH_WORK = SearchWork(
    stages,
    shape_bound="lower bound: the searched net grows from the round-0 base by one cell a round",
    cost_note="not stated: not in the README, code or abstract [unknown; check the paper] "
              "(../shared/reference/memnas.md §1)",
)
