"""ProxylessNAS's search work, torch-free (`SearchWork` of its MethodInfo; `nasrepro cost` prices it).

Stage `search`: weight steps on one sampled path of the super-network (warm-up, then joint
epochs), and architecture updates (gradient: binary-gated steps; REINFORCE: forward passes of
sampled nets). Stage `latency` (the lookup table, timed on the device) is not projected.
"""

from __future__ import annotations

import math
from typing import Any

from nas_impl.methods.work_units import (EVAL_COST, Network, Part, SearchWork, StageWork, data_size, thousands,
                                         train_subset)

PROXYLESS_ARCH_STEP = 2.17  # README "Search steps": a full_v2 architecture step = 2.17 weight steps (CPU, once)


def stages(recipe: Any, base: Network) -> dict[str, StageWork]:
    size = data_size(base.dataset)
    w, s = recipe.weights, recipe.proxyless
    n = train_subset(w, size) - s.valid_size
    steps = math.ceil(n / w.batch_size)
    weight = (s.supernet_warmup_epochs + w.epochs) * n
    joint = max(0, w.epochs - s.arch_skip_epochs)
    if s.arch_algo == "gradient":
        batch = s.arch_batch_size or w.batch_size
        updates = joint * (steps // s.arch_every) * s.arch_steps
        arch_images, arch_cost = updates * batch, PROXYLESS_ARCH_STEP
        arch = (f"{joint} epochs x {steps // s.arch_every * s.arch_steps} architecture updates of {batch} images "
                f"at {PROXYLESS_ARCH_STEP} ({s.grad_mode}; README 'Search steps', measured once on CPU)")
    else:
        batch = s.arch_batch_size or w.eval_batch_size
        updates = joint * min(steps, s.rl_updates_per_epoch)
        arch_images, arch_cost = updates * s.rl_samples * batch, EVAL_COST
        arch = (f"{joint} epochs x {min(steps, s.rl_updates_per_epoch)} REINFORCE updates x {s.rl_samples} sampled "
                f"nets x {batch} images at 1/3 (forward only)")
    parts = (Part(base, weight), Part(base, arch_images, arch_cost))
    basis = (f"({s.supernet_warmup_epochs} warm-up + {w.epochs}) epochs x {thousands(n)} images (less "
             f"{thousands(s.valid_size)} held out) on one sampled path = 1 plain step of the base chain per image "
             f"(README: 0.99x); + {arch}; per-epoch held-out evaluations not counted")
    return {"search": StageWork("search", weight + arch_images, parts, basis, base)}


SEARCH_WORK = SearchWork(
    stages,
    shape_bound="approximate: the base chain's widths and depths; its kernels and expansions are searched",
    cost_note="not stated for these searches: Table 1's 200 GPU-h are the mobile searches' "
              "(../shared/reference/proxylessnas.md §1.5)",
)
