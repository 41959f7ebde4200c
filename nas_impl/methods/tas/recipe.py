"""TAS search recipes: the weights' training recipe plus the architecture-search settings.

A search recipe is a training `Recipe` (epochs, batch, SGD and its schedule, augmentation: the
super-network's weights) with TAS's own keys added. Values may carry a source, as in Recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_impl.errors import SpecError
from nas_impl.methods.search_recipe import build_settings, search_recipe_dict, split_search_recipe
from nas_impl.training.recipe import Recipe

TAU_SCHEDULES = ("cosine", "linear")
SELECTIONS = ("last", "best")


@dataclass(frozen=True)
class TASSettings:
    target_ratio: float  # target MACs / MACs of the unpruned network
    tolerance: float = 0.05  # of the unpruned MACs: the FLOP loss is 0 within [target - tol, target]
    flop_weight: float = 2.0  # lambda
    paper_tolerance: bool = False  # 'too large' above target + tol (paper) rather than target (code)
    arch_lr: float = 1e-3
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    tau_max: float = 5.0
    tau_min: float = 0.1
    tau_schedule: str = "cosine"
    block_relu: bool = True  # the post-publication fix (tas.md §6 #1); False = the paper-time net
    split_seed: int = 0  # of the class-balanced 50/50 split of the training set
    # The shape written as arch.yaml (the one retrained): 'last' = after the last epoch (the
    # scripts' seed-X-last.config), 'best' = best valid accuracy among the epochs that ended inside
    # the MACs band (seed-X-best.config; the last shape when no epoch did).
    select: str = "last"

    def __post_init__(self) -> None:
        checks = [
            ("target_ratio", 0 < self.target_ratio <= 1, "in (0, 1]"),
            ("tolerance", 0 <= self.tolerance < 1, "in [0, 1)"),
            ("flop_weight", self.flop_weight >= 0, "non-negative"),
            ("arch_lr", self.arch_lr > 0, "positive"),
            ("tau_min", 0 < self.tau_min <= self.tau_max, "positive and at most tau_max"),
            ("tau_schedule", self.tau_schedule in TAU_SCHEDULES, f"one of {', '.join(TAU_SCHEDULES)}"),
            ("select", self.select in SELECTIONS, f"one of {', '.join(SELECTIONS)}"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise SpecError(f"search recipe key '{key}' = {getattr(self, key)!r}: must be {expected}")


@dataclass(frozen=True)
class SearchRecipe:
    weights: Recipe
    tas: TASSettings

    def to_dict(self) -> dict[str, Any]:
        return search_recipe_dict(self.weights, self.tas)


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    weights, tas = split_search_recipe(raw, origin, TASSettings)
    if "target_ratio" not in tas:
        raise SpecError(f"{origin}: search recipe key 'target_ratio' is required (target MACs / unpruned MACs)")
    if "arch_betas" in tas:
        tas["arch_betas"] = tuple(tas["arch_betas"])
    for key, value in tas.items():
        if key != "arch_betas" and (isinstance(value, (dict, list)) or value is None):
            raise SpecError(f"{origin}: search recipe key '{key}' = {value!r} must be a scalar")
    return SearchRecipe(weights, build_settings(TASSettings, tas, origin))
