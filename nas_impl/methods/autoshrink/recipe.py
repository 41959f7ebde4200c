"""AutoShrink search recipes: the proxy training recipe of every candidate plus the shrink settings.

The search's base spec decides which search runs:
- a `shrink-cnn` base: the CNN search. The weight keys are each candidate's training on the CIFAR
  proxy (official `solver/cifar10_proxy.solver`: Adam lr 4e-3, constant; batch 128; 20 epochs; L2
  1e-5 on the weights); every candidate trains the official search network
  (`shrink_cnn.search_network_spec`: CIFAR stem, three one-cell stages of 16, 32, 64 filters per
  node) with its cell, and the found cell goes into the base network (`arch.yaml`).
- a `dag-rnn-lm` base: the RNN search on the PTB proxy (`searching/rnn/train.py`: plain SGD lr 20,
  clip 0.25, batch 128, 10 epochs, no weight decay). Every candidate is the base's cell at
  `hidden` units with no dropout (`rnn_proxy`); the found cell goes into the base language model.
The shrink keys apply to both; `per_class_*`, `valid_from`, `valid_batch_size` are the CNN
proxy's, `proxy_lines`, `hidden`, `half_window_prob`, `patience`, `embedding_vectors` the RNN's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_impl.methods.autoshrink.work import SEARCH_WORK
from nas_impl.methods.interface import MethodInfo
from nas_impl.methods.search_recipe import build_settings, check_settings, search_recipe_dict, split_search_recipe
from nas_impl.training.recipe import Recipe, RecipeKeyError

NODE_OPS = ("sep3x3", "conv1x1")
RNN_NODE_OPS = ("relu", "sigmoid", "tanh", "identity")  # official `utils.op_name`
SNAPSHOT_RULES = ("best_score", "edge_ratio")
VALID_FROM = ("train", "test")


@dataclass(frozen=True)
class ShrinkSettings:
    nodes: int = 8  # the complete DAG of `nodes` nodes is where the search starts
    ops: tuple[str, ...] = ()  # per node after node 0; empty: a seeded draw (see `node_ops`)
    ops_seed: int = 5  # CNN: the official np.random.seed(5) (its exact draw is numpy's; this one is Python's)
    k: int = 10  # candidates a step (official max_steps_to_action)
    keep_fraction: float = 0.01  # stop at round(max_edges x keep_fraction) edges
    snapshot: str = "best_score"  # which step's graph arch.yaml holds; or edge_ratio (nearest snapshot_ratio)
    snapshot_ratio: float | None = None  # e.g. 0.29, the README's graph-0.29
    per_class_train: int = 500
    per_class_valid: int = 100
    valid_from: str = "train"  # or test: the official draw of the test split, with replacement
    split_seed: int = 0
    valid_batch_size: int = 100
    # The RNN search's proxy (see rnn_proxy):
    proxy_lines: tuple[int, int, int] = (4000, 300, 300)  # first lines of PTB train, valid, test (official penn_proxy)
    hidden: int = 100  # emsize = nhid of every candidate
    bptt: int = 35
    half_window_prob: float = 0.05
    patience: int = 4
    embedding_vectors: str | None = None  # GloVe text vectors for the initial embedding (official w2v.pkl)

    def __post_init__(self) -> None:
        checks = [
            (("nodes",), self.nodes >= 2, "at least 2"),
            (("ops", "nodes"), not self.ops or len(self.ops) == self.nodes - 1,
             f"one op per node after node 0 (nodes - 1 = {self.nodes - 1}), or empty for a seeded draw"),
            (("ops",), all(op in NODE_OPS + RNN_NODE_OPS for op in self.ops),
             f"ops among {', '.join(NODE_OPS)} (CNN) or {', '.join(RNN_NODE_OPS)} (RNN)"),
            (("k",), self.k >= 1, "a positive number of candidates"),
            (("keep_fraction",), 0 <= self.keep_fraction < 1, "in [0, 1)"),
            (("snapshot",), self.snapshot in SNAPSHOT_RULES, f"one of {', '.join(SNAPSHOT_RULES)}"),
            (("snapshot_ratio", "snapshot"), (self.snapshot == "edge_ratio") == (self.snapshot_ratio is not None),
             "set (in (0, 1]) exactly when snapshot is edge_ratio"),
            (("per_class_train",), self.per_class_train >= 1, "a positive number of images a class"),
            (("per_class_valid",), self.per_class_valid >= 1, "a positive number of images a class"),
            (("valid_from",), self.valid_from in VALID_FROM, f"one of {', '.join(VALID_FROM)}"),
            (("valid_batch_size",), self.valid_batch_size >= 1, "a positive integer"),
            (("proxy_lines",), len(self.proxy_lines) == 3 and min(self.proxy_lines) >= 1,
             "three positive line counts: [train, valid, test]"),
            (("hidden",), self.hidden >= 1, "a positive integer"),
            (("bptt",), self.bptt >= 2, "at least 2 tokens"),
            (("half_window_prob",), 0 <= self.half_window_prob <= 1, "a probability"),
            (("patience",), self.patience >= 1, "a positive number of epochs"),
        ]
        check_settings(self, checks)


@dataclass(frozen=True)
class SearchRecipe:
    weights: Recipe  # each candidate's proxy training
    shrink: ShrinkSettings

    def to_dict(self) -> dict[str, Any]:
        return search_recipe_dict(self.weights, self.shrink)


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    weights, settings = split_search_recipe(raw, origin, ShrinkSettings, not_applied=NOT_APPLIED, applies=APPLIES)
    # The proxy trainers are the official ones: the CNN's Adam, the RNN's plain SGD, at a constant lr
    # (the RNN's two drops are the estimator's own) on unaugmented data; which one runs is the base
    # spec's family, checked by `check_weights` when the search starts.
    for key, ok, expected in (("optimizer", weights.optimizer in ("adam", "sgd"),
                               "adam (the CNN proxy solver) or sgd (the RNN estimator)"),
                              ("schedule", weights.schedule == "constant", "constant (the solver's decay is 1.0)"),
                              ("augment", not any(weights.augment.values()), "{} (the proxy is not augmented)")):
        if not ok:
            raise RecipeKeyError(origin, (key,), f"search recipe key '{key}' = {getattr(weights, key)!r}: "
                                                 f"must be {expected}")
    return SearchRecipe(weights, build_settings(ShrinkSettings, settings, origin))


def check_weights(recipe: SearchRecipe, search: str) -> None:
    """The search recipe fits the search the base spec selects (`search`: cnn or rnn)."""
    w, ops = recipe.weights, recipe.shrink.ops
    allowed = NODE_OPS if search == "cnn" else RNN_NODE_OPS
    checks = [("ops", all(op in allowed for op in ops), f"ops among {', '.join(allowed)}")]
    if search == "cnn":
        checks += [("optimizer", w.optimizer == "adam", "adam: the CNN proxy solver"),
                   ("grad_clip", w.grad_clip is None, "unset: the CNN proxy does not clip")]
    else:
        checks += [("optimizer", w.optimizer == "sgd" and w.momentum == 0 and not w.nesterov,
                    "sgd with momentum 0: the RNN estimator's plain SGD")]
    for key, ok, expected in checks:
        if not ok:
            raise RecipeKeyError("search recipe", (key,), f"AutoShrink's {search.upper()} search (chosen by the "
                                 f"base spec's family): key '{key}' must be {expected}")


# The RNN proxy clips gradients (the CNN's refuses a clip: `check_weights`).
APPLIES = ("grad_clip",)
# Training keys the proxy trainer does not apply (beyond those no search applies); the proxy's size
# is per_class_train / per_class_valid.
NOT_APPLIED = ("label_smoothing", "warmup_epochs", "train_subset", "test_subset")


INFO = MethodInfo("autoshrink", ShrinkSettings, search_recipe_from_dict, lambda recipe: ("cell",),
                  not_applied=("label_smoothing",), applies=APPLIES, search_work=SEARCH_WORK)
