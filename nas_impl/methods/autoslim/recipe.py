"""AutoSlim search recipes: the super-network's training recipe plus the slimming settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nas_impl.errors import SpecError
from nas_impl.methods.autoslim.work import SEARCH_WORK
from nas_impl.methods.interface import MethodInfo, Stage
from nas_impl.methods.search_recipe import build_settings, search_recipe_dict, split_search_recipe
from nas_impl.training.recipe import Recipe, RecipeKeyError

_TARGET = re.compile(r"^(?P<value>\d+(\.\d+)?)(?P<unit>x|M|G)$")


def parse_target(text: str) -> tuple[str, float]:
    """'0.5x' (times the default-width network's MACs), '305M' or '3G' (absolute MACs)."""
    match = _TARGET.match(str(text))
    if not match:
        raise SpecError(f"search recipe key 'targets': '{text}' is not a MACs target; write e.g. '0.5x' "
                        "(of the default-width network's MACs), '305M' or '3G'")
    return match["unit"], float(match["value"])


@dataclass(frozen=True)
class AutoSlimSettings:
    targets: tuple[str, ...]  # MACs targets, recorded on the way down (the first is arch.yaml)
    supernet_width: float = 1.5  # super-network width, times the default channel list
    channel_step: int = 8  # channels one slimming step removes from a group (official slimming())
    divisions: int | None = None  # if set, replaces channel_step: this many equal steps per group (paper: 10)
    width_min: float = 0.15  # smallest width of a group, of its full width
    num_sample_training: int = 4  # sandwich: largest, smallest and n - 2 random configurations
    inplace_distill: bool = True  # smaller configurations learn the largest one's soft predictions
    holdout: float = 0.2  # class-balanced share of the training set kept for slimming
    split_seed: int = 0
    slim_images: int = 1000  # held-out images that score each candidate
    slim_batch_size: int = 1000  # BN uses the statistics of batches of this size while scoring
    calibration_batches: int = 5  # BN recalibration before the super-network is evaluated

    def __post_init__(self) -> None:
        checks = [
            ("targets", len(self.targets) >= 1, "a non-empty list such as ['0.5x'] or ['505M', '305M']"),
            ("supernet_width", self.supernet_width >= 1.0, "at least 1.0"),
            ("channel_step", self.channel_step >= 1, "a positive integer"),
            ("divisions", self.divisions is None or self.divisions >= 2, "an integer of at least 2, or null"),
            ("width_min", 0 < self.width_min <= 1, "in (0, 1]"),
            ("num_sample_training", self.num_sample_training >= 2, "at least 2 (largest and smallest)"),
            ("holdout", 0 < self.holdout < 1, "in (0, 1)"),
            ("split_seed", self.split_seed >= 0, "a non-negative integer"),
            ("slim_images", self.slim_images >= 1, "positive"),
            ("slim_batch_size", self.slim_batch_size >= 2, "at least 2 (BN batch statistics)"),
            ("calibration_batches", self.calibration_batches >= 1, "positive"),
        ]
        for key, ok, expected in checks:
            if not ok:
                value = getattr(self, key)
                value = list(value) if isinstance(value, tuple) else value
                raise RecipeKeyError("", (key,), f"search recipe key '{key}' = {value!r}: must be {expected}")
        for target in self.targets:
            try:
                parse_target(target)
            except SpecError as err:
                raise RecipeKeyError("", ("targets",), str(err)) from None


@dataclass(frozen=True)
class SearchRecipe:
    weights: Recipe  # the super-network's training
    autoslim: AutoSlimSettings

    @property
    def targets(self) -> tuple[str, ...]:
        return self.autoslim.targets

    def to_dict(self) -> dict[str, Any]:
        return search_recipe_dict(self.weights, self.autoslim)


# Keys only the slimming stage reads: the super-network does not depend on them (new targets reuse it).
SLIMMING_ONLY = ("targets", "slim_images", "slim_batch_size", "calibration_batches")


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    weights, settings = split_search_recipe(raw, origin, AutoSlimSettings)
    if "targets" not in settings:
        raise RecipeKeyError(origin, ("targets",),
                             "search recipe key 'targets' is required, e.g. ['0.5x'] or ['505M', '305M']")
    if not isinstance(settings["targets"], (list, tuple)):
        raise RecipeKeyError(origin, ("targets",), f"search recipe key 'targets' = {settings['targets']!r}: must be "
                             "a list, e.g. ['0.5x'] or ['505M', '305M']")
    settings["targets"] = tuple(str(t) for t in settings["targets"])
    return SearchRecipe(weights, build_settings(AutoSlimSettings, settings, origin))


# `supernet` trains the slimmable super-network (checkpointed every epoch; it does not depend on the
# slimming-only keys, so new targets reuse it); `slim` slims it greedily down to every target.
INFO = MethodInfo("autoslim", AutoSlimSettings, search_recipe_from_dict, lambda recipe: recipe.autoslim.targets,
                  stages=(Stage("supernet", "supernet.json", checkpoint="search_checkpoint.pt", ignores=SLIMMING_ONLY,
                                reused=("supernet.pt",)),
                          Stage("slim", "search.json")),
                  search_work=SEARCH_WORK)
