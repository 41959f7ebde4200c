"""TAS search recipes: the weights' training recipe plus the architecture-search settings.

A search recipe is a training `Recipe` (epochs, batch, SGD and its schedule, augmentation: the
super-network's weights) with TAS's own keys added. Values may carry a source, as in Recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_impl.methods.interface import MethodInfo, ratio_target
from nas_impl.methods.search_recipe import build_settings, check_settings, search_recipe_dict, split_search_recipe
from nas_impl.methods.tas.work import SEARCH_WORK
from nas_impl.training.recipe import Recipe, RecipeKeyError

TAU_SCHEDULES = ("cosine", "linear")
SELECTIONS = ("last", "best", "best-in-band")
FLOP_RULES = ("official", "built")  # as nas_impl.methods.tas.flops (kept torch-free here)


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
    # Which MACs the FLOP loss and the band compare with the target: 'official' = the released
    # configs' estimated_FLOP rule and the official search's expectation, 'built' = the built
    # network's exact count and its exact expectation (see nas_impl.methods.tas.flops).
    flop_rule: str = "official"
    # The shape written as arch.yaml (the one retrained): 'last' = after the last epoch (the
    # scripts' seed-X-last.config); 'best' = what the official script writes as seed-X-best.config:
    # the epoch with the best accuracy of a separate eval-mode pass over the architecture half, the
    # first on ties (its in-band loop cannot change that pick); 'best-in-band' = what that loop
    # apparently intends: the best such epoch with |ratio - target_ratio| <= tolerance, else 'best'.
    select: str = "last"

    def __post_init__(self) -> None:
        checks = [
            (("target_ratio",), lambda: 0 < self.target_ratio <= 1, "in (0, 1]"),
            (("tolerance",), lambda: 0 <= self.tolerance < 1, "in [0, 1)"),
            (("flop_weight",), lambda: self.flop_weight >= 0, "non-negative"),
            (("arch_lr",), lambda: self.arch_lr > 0, "positive"),
            (("arch_betas",), lambda: len(self.arch_betas) == 2 and all(0 <= b < 1 for b in self.arch_betas),
             "two numbers in [0, 1), e.g. [0.5, 0.999]"),
            (("arch_weight_decay",), lambda: self.arch_weight_decay >= 0, "non-negative (0 disables it)"),
            (("tau_min", "tau_max"), lambda: 0 < self.tau_min <= self.tau_max, "positive and at most tau_max"),
            (("tau_schedule",), lambda: self.tau_schedule in TAU_SCHEDULES, f"one of {', '.join(TAU_SCHEDULES)}"),
            (("split_seed",), lambda: self.split_seed >= 0, "a non-negative integer"),
            (("select",), lambda: self.select in SELECTIONS, f"one of {', '.join(SELECTIONS)}"),
            (("flop_rule",), lambda: self.flop_rule in FLOP_RULES, f"one of {', '.join(FLOP_RULES)}"),
        ]
        check_settings(self, checks)


@dataclass(frozen=True)
class SearchRecipe:
    weights: Recipe
    tas: TASSettings

    def to_dict(self) -> dict[str, Any]:
        return search_recipe_dict(self.weights, self.tas)


# The official search step trains the weights with plain cross-entropy.
NOT_APPLIED = ("label_smoothing",)


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    weights, tas = split_search_recipe(raw, origin, TASSettings, not_applied=NOT_APPLIED)
    if "target_ratio" not in tas:
        raise RecipeKeyError(origin, ("target_ratio",),
                             "search recipe key 'target_ratio' is required (target MACs / unpruned MACs)")
    return SearchRecipe(weights, build_settings(TASSettings, tas, origin))


# One stage, checkpointed every epoch; one target, the recipe's target_ratio.
INFO = MethodInfo("tas", TASSettings, search_recipe_from_dict, lambda recipe: (ratio_target(recipe.tas.target_ratio),),
                  not_applied=NOT_APPLIED, search_work=SEARCH_WORK)
