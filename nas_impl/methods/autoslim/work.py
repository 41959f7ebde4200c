"""AutoSlim's search work, torch-free (`SearchWork` of its MethodInfo; `nasrepro cost` prices it).

Stage `supernet`: sandwich-rule training of the slimmable super-network on the training set less
the held-out part. Stage `slim` (greedy slimming on held-out images) is not projected: only a
measured run of the same recipe prices it.
"""

from __future__ import annotations

from typing import Any

from nas_impl.methods.work_units import (Network, Part, SearchWork, StageWork, data_size, epochs_text, thousands,
                                         train_subset)

AUTOSLIM_SANDWICH = 2.5  # README "Search steps": a sandwich step = 2.2-2.85 plain steps of the full-width super-net


def stages(recipe: Any, base: Network) -> dict[str, StageWork]:
    size = data_size(base.dataset)
    w, s = recipe.weights, recipe.autoslim
    n = round(train_subset(w, size) * (1 - s.holdout))
    work = w.epochs * n
    cost = AUTOSLIM_SANDWICH * s.supernet_width ** 2
    basis = (f"{epochs_text(w.epochs)} x {thousands(n)} images (training set less the {s.holdout:g} held out); a "
             f"sandwich step ({s.num_sample_training} configurations) = {AUTOSLIM_SANDWICH} plain steps of the "
             f"full-width super-network (README 'Search steps': 2.2-2.85), which is {s.supernet_width:g}x the base's "
             f"width: x {s.supernet_width:g}^2 (MACs grow with width squared) = {cost:.2f} base steps per image")
    return {"supernet": StageWork("supernet", work, (Part(base, work, cost),), basis, base)}


SEARCH_WORK = SearchWork(
    stages,
    shape_bound="upper bound: the slimmed shape has fewer channels than the base network",
    cost_note="not stated: no GPU-hour figure is published [secondary] (../shared/reference/autoslim.md, "
              "'Search cost')",
)
