"""TAS search recipes: the weights' training recipe plus the architecture-search settings.

A search recipe is a training `Recipe` (epochs, batch, SGD and its schedule, augmentation: the
super-network's weights) with TAS's own keys added. Values may carry a source, as in Recipe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nas_impl.errors import SpecError
from nas_impl.training.recipe import Recipe, recipe_from_dict, unwrap_sources

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
        out = {**self.weights.to_dict(), **dataclasses.asdict(self.tas)}
        out["arch_betas"] = list(self.tas.arch_betas)
        out["sources"] = dict(self.weights.sources)
        return out


TAS_KEYS = {f.name for f in dataclasses.fields(TASSettings)}


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: a search recipe must be a mapping, got {type(raw).__name__}")
    values, sources = unwrap_sources(dict(raw))
    known = TAS_KEYS | {f.name for f in dataclasses.fields(Recipe)} - {"sources"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"{origin}: unknown search recipe key(s) {unknown}; allowed keys: {sorted(known)}")
    tas = {k: values.pop(k) for k in list(values) if k in TAS_KEYS}
    if "target_ratio" not in tas:
        raise SpecError(f"{origin}: search recipe key 'target_ratio' is required (target MACs / unpruned MACs)")
    if "arch_betas" in tas:
        tas["arch_betas"] = tuple(tas["arch_betas"])
    for key, value in tas.items():
        if key != "arch_betas" and (isinstance(value, (dict, list)) or value is None):
            raise SpecError(f"{origin}: search recipe key '{key}' = {value!r} must be a scalar")
    weights = recipe_from_dict({**values, "sources": sources}, origin)
    try:
        return SearchRecipe(weights, TASSettings(**tas))
    except SpecError as err:
        raise SpecError(f"{origin}: {err}") from None
    except TypeError as err:
        raise SpecError(f"{origin}: {err}") from None

