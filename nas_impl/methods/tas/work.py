"""TAS's search work, torch-free (`SearchWork` of its MethodInfo; `nasrepro cost` prices it).

One stage, `search`: each epoch trains the weights on one half of the (class-balanced) training
set, an architecture batch from the other half riding with each weight batch.
"""

from __future__ import annotations

from typing import Any

from nas_impl.methods.work_units import (EVAL_COST, Network, Part, SearchWork, StageWork, data_size, epochs_text,
                                         thousands, train_subset)

TAS_STEP = 3.5  # README "Search steps": a TAS step (weight batch + architecture batch) = 3.27-3.56 plain steps (CPU)


def stages(recipe: Any, base: Network) -> dict[str, StageWork]:
    size = data_size(base.dataset)
    w = recipe.weights
    half = train_subset(w, size) // 2
    work = w.epochs * half
    parts = [Part(base, work, TAS_STEP)]
    basis = (f"{epochs_text(w.epochs)} x {thousands(half)} weight-half images (an architecture batch rides with "
             f"each); a TAS step = {TAS_STEP} plain steps of the base network per weight image (README 'Search "
             f"steps': 3.27-3.56 measured on CPU)")
    if recipe.tas.select != "last":
        parts.append(Part(base, w.epochs * half, EVAL_COST))
        basis += f"; select '{recipe.tas.select}': + an evaluation of the architecture half each epoch at 1/3"
    return {"search": StageWork("search", work, tuple(parts), basis, base)}


SEARCH_WORK = SearchWork(
    stages,
    shape_bound="upper bound: the searched shape is pruned from the base network",
    cost_note="not stated: the paper reports no search GPU-hours [unverified] (../shared/reference/tas.md §1.3)",
)
