"""MemNAS search recipes: each candidate's short training plus the grow-and-trim settings.

The weight keys (`epochs`, `lr`, `batch_size`, `augment`, `train_subset`, ...) are every candidate's
training, run by the suite's one trainer; the official search trained its candidates with the
final-training script (utils/train.py: SGD lr 0.01, momentum 0.9, no weight decay, crop + flip +
cutout) for an unrecorded number of epochs (memnas.md §4). The grow/trim keys are below; the base
spec (a `memnas-cells` net) gives the width and, with `round0: 0`, round 0's network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_impl.methods.memnas.work import SEARCH_WORK
from nas_impl.methods.interface import MethodInfo
from nas_impl.methods.search_recipe import build_settings, check_settings, search_recipe_dict, split_search_recipe
from nas_impl.training.recipe import Recipe

REWARD_FORMS = ("code", "paper")  # as nas_impl.methods.memnas.reward.REWARDS (kept torch-free here)
MEMORY_RULES = ("liveness", "code")
SELECT_RULES = ("reward", "accuracy")
VALID_FROM = ("train", "test")
ROUND0_NETS = 98  # 7 ops x 7 ops x (add, cat): the official round 0 (models/networks/round0/net1..98.py)


@dataclass(frozen=True)
class MemNASSettings:
    rounds: int = 6  # grow/trim rounds after round 0 (the final literal has 7 cells a block: round 0's + 6)
    round0: int = ROUND0_NETS  # round 0's one-cell nets trained (all 98 officially; fewer: a seeded sample;
    # 0: the base spec is round 0's only network, e.g. the official round-0 best net53)
    k: int = 100  # top-k candidates of the controller's ranking trained a round [unverified: memnas.md §3.5]
    audit: int = 0  # extra candidates a round drawn at random outside the top-k, trained only to measure
    # the controller's ranking without the top-k's truncation (never a round's best; they do train it later)
    controller_from: int = 2  # the first round ranked by the controller; earlier rounds train every candidate
    # (the code trained all of round 1's and fitted its controller on them: memnas.md §2, §3.5)
    reward: str = "code"  # code: 0.7 acc + 0.3 (0.3 W + 0.7 I), general.py `score`; paper: lambda form
    lam: float = 0.8  # the paper form's accuracy weight (the published runs: 0.5 and 0.8)
    memory: str = "liveness"  # what W and I are: the suite's liveness rule (bytes), or the code's
    # cal_weight / cal_in element counts (nas_impl.methods.memnas.code_memory)
    memory_channels: int = 32  # the code proxies' channels per block (blobk*_channel)
    select: str = "reward"  # a round's best: the highest reward among the top-k, or the best accuracy
    # (the code's find_best_network ranks a round's logs by test accuracy)
    valid_size: int = 5000  # training images held out to score candidates (valid_from: train)
    valid_from: str = "train"  # or test: the code's choice (candidates were scored on the test split)
    split_seed: int = 0
    controller_hidden: int = 100  # LSTM(100) (utils/controller.py)
    controller_epochs: int = 10000  # nb_epoch 10000, the best validation loss kept
    controller_batch_size: int = 64
    controller_lr: float = 1e-3  # Keras Adam's default
    controller_valid: int = 50  # the first 50 samples validate
    pad_extra: int = 2  # zero cells after each block's cells (controller.py's pad_extra)

    def __post_init__(self) -> None:
        checks = [
            (("rounds",), self.rounds >= 0, "a number of rounds, 0 or more"),
            (("round0",), 0 <= self.round0 <= ROUND0_NETS, f"between 0 and {ROUND0_NETS}"),
            (("k",), self.k >= 1, "a positive number of candidates"),
            (("audit",), self.audit >= 0, "0 or more candidates"),
            (("controller_from",), self.controller_from >= 1, "a round, 1 or later"),
            (("reward",), self.reward in REWARD_FORMS, f"one of {', '.join(REWARD_FORMS)}"),
            (("lam",), 0.0 <= self.lam <= 1.0, "in [0, 1] (the paper's runs: 0.5, 0.8)"),
            (("memory",), self.memory in MEMORY_RULES, f"one of {', '.join(MEMORY_RULES)}"),
            (("memory_channels",), self.memory_channels >= 1, "a positive integer"),
            (("select",), self.select in SELECT_RULES, f"one of {', '.join(SELECT_RULES)}"),
            (("valid_size",), self.valid_size >= 1, "a positive number of images"),
            (("valid_from",), self.valid_from in VALID_FROM, f"one of {', '.join(VALID_FROM)}"),
            (("controller_hidden",), self.controller_hidden >= 1, "a positive integer"),
            (("controller_epochs",), self.controller_epochs >= 1, "a positive number of epochs"),
            (("controller_batch_size",), self.controller_batch_size >= 1, "a positive integer"),
            (("controller_lr",), self.controller_lr > 0, "positive"),
            (("controller_valid",), self.controller_valid >= 0, "0 or more samples"),
            (("pad_extra",), self.pad_extra >= 0, "0 or more cells"),
        ]
        check_settings(self, checks)


@dataclass(frozen=True)
class SearchRecipe:
    weights: Recipe  # every candidate's training
    memnas: MemNASSettings

    def to_dict(self) -> dict[str, Any]:
        return search_recipe_dict(self.weights, self.memnas)


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    weights, settings = split_search_recipe(raw, origin, MemNASSettings)
    return SearchRecipe(weights, build_settings(MemNASSettings, settings, origin))


INFO = MethodInfo("memnas", MemNASSettings, search_recipe_from_dict, lambda recipe: ("cells",),
                  search_work=SEARCH_WORK)
