"""AutoShrink search recipes: the proxy training recipe of every candidate plus the shrink settings.

The weight keys are each candidate's training on the proxy (official `solver/cifar10_proxy.solver`:
Adam lr 4e-3, constant; batch 128; 20 epochs; L2 1e-5 on the weights). The base spec is the
`shrink-cnn` network the found cell goes into (`arch.yaml`); the network every candidate trains
is the official search network (`shrink_cnn.search_network_spec`: CIFAR stem, three one-cell
stages of 16, 32, 64 filters per node) with the candidate's cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_impl.methods.interface import MethodInfo, Stage
from nas_impl.methods.search_recipe import build_settings, check_settings, search_recipe_dict, split_search_recipe
from nas_impl.training.recipe import Recipe, RecipeKeyError

NODE_OPS = ("sep3x3", "conv1x1")
SNAPSHOT_RULES = ("best_score", "edge_ratio")
VALID_FROM = ("train", "test")


@dataclass(frozen=True)
class ShrinkSettings:
    nodes: int = 8  # the complete DAG of `nodes` nodes is where the search starts
    ops: tuple[str, ...] = ()  # per node after node 0; empty: a seeded balanced draw (see `node_ops`)
    ops_seed: int = 5  # the official np.random.seed(5) (its exact draw is numpy's; this one is Python's)
    k: int = 10  # candidates a step (official max_steps_to_action)
    keep_fraction: float = 0.01  # stop at round(max_edges x keep_fraction) edges
    snapshot: str = "best_score"  # which step's graph arch.yaml holds; or edge_ratio (nearest snapshot_ratio)
    snapshot_ratio: float | None = None  # e.g. 0.29, the README's graph-0.29
    per_class_train: int = 500
    per_class_valid: int = 100
    valid_from: str = "train"  # or test: the official draw of the test split, with replacement
    split_seed: int = 0
    valid_batch_size: int = 100

    def __post_init__(self) -> None:
        checks = [
            (("nodes",), self.nodes >= 2, "at least 2"),
            (("ops", "nodes"), not self.ops or len(self.ops) == self.nodes - 1,
             f"one op per node after node 0 (nodes - 1 = {self.nodes - 1}), or empty for a seeded draw"),
            (("ops",), all(op in NODE_OPS for op in self.ops), f"ops among {', '.join(NODE_OPS)}"),
            (("k",), self.k >= 1, "a positive number of candidates"),
            (("keep_fraction",), 0 <= self.keep_fraction < 1, "in [0, 1)"),
            (("snapshot",), self.snapshot in SNAPSHOT_RULES, f"one of {', '.join(SNAPSHOT_RULES)}"),
            (("snapshot_ratio", "snapshot"), (self.snapshot == "edge_ratio") == (self.snapshot_ratio is not None),
             "set (in (0, 1]) exactly when snapshot is edge_ratio"),
            (("per_class_train",), self.per_class_train >= 1, "a positive number of images a class"),
            (("per_class_valid",), self.per_class_valid >= 1, "a positive number of images a class"),
            (("valid_from",), self.valid_from in VALID_FROM, f"one of {', '.join(VALID_FROM)}"),
            (("valid_batch_size",), self.valid_batch_size >= 1, "a positive integer"),
        ]
        check_settings(self, checks)


@dataclass(frozen=True)
class SearchRecipe:
    weights: Recipe  # each candidate's proxy training
    shrink: ShrinkSettings

    def to_dict(self) -> dict[str, Any]:
        return search_recipe_dict(self.weights, self.shrink)


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    weights, settings = split_search_recipe(raw, origin, ShrinkSettings, not_applied=NOT_APPLIED)
    # The proxy trainer is the official one: Adam at a constant lr on normalised images.
    for key, ok, expected in (("optimizer", weights.optimizer == "adam", "adam (the official proxy solver)"),
                              ("schedule", weights.schedule == "constant", "constant (the solver's decay is 1.0)"),
                              ("augment", not any(weights.augment.values()), "{} (the proxy is not augmented)")):
        if not ok:
            raise RecipeKeyError(origin, (key,), f"search recipe key '{key}' = {getattr(weights, key)!r}: "
                                                 f"must be {expected}")
    return SearchRecipe(weights, build_settings(ShrinkSettings, settings, origin))


# Training keys the proxy trainer does not apply (beyond those no search applies); the proxy's size
# is per_class_train / per_class_valid.
NOT_APPLIED = ("label_smoothing", "warmup_epochs", "train_subset", "test_subset")


INFO = MethodInfo("autoshrink", ShrinkSettings, search_recipe_from_dict, lambda recipe: ("cell",),
                  stages=(Stage("search", "search.json", checkpoint="shrink_state.json"),),
                  not_applied=("label_smoothing",))
