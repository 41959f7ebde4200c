"""Learning-rate schedules as pure functions of the global step (per-iteration granularity)."""

from __future__ import annotations

import bisect
import math

from nas_impl.training.recipe import Recipe


def lr_at(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of the whole run (with `lr_per_epoch`, the
    rate of its epoch's first step: TensorFlow schedules fed the epoch, as AutoShrink's)."""
    epoch = step // steps_per_epoch if recipe.lr_per_epoch else step / steps_per_epoch  # (fractional) epochs
    if epoch < recipe.warmup_epochs:
        return recipe.warmup_lr + (recipe.lr - recipe.warmup_lr) * epoch / recipe.warmup_epochs
    # The decay schedules run over the epochs after warm-up.
    done = epoch - recipe.warmup_epochs
    span = recipe.epochs - recipe.warmup_epochs
    if recipe.schedule == "constant":
        return recipe.lr
    if recipe.schedule == "step":
        return recipe.lr * recipe.gamma ** math.floor(done / recipe.step_size)
    if recipe.schedule == "multistep":
        return recipe.lr * recipe.gamma ** bisect.bisect_right(sorted(recipe.milestones), epoch)
    if recipe.schedule == "cosine":
        return recipe.min_lr + (recipe.lr - recipe.min_lr) * 0.5 * (1 + math.cos(math.pi * done / span))
    if recipe.schedule == "linear":
        return recipe.min_lr + (recipe.lr - recipe.min_lr) * (1 - done / span)
    raise AssertionError(recipe.schedule)  # Recipe validates the name
