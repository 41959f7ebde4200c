"""MemNAS's reward: how much a candidate improves on the previous round's best network, in accuracy
and in memory (../shared/reference/memnas.md §3.4). Both forms, selectable by name (`REWARDS`):

- `code`, as `score` in utils/general.py of MemNAS/MemNAS@f9a9c65 computes it:
      R = k1 (acc - acc_pre) / acc_pre + k2 [0.3 (W_pre - W) / W_pre + 0.7 (I_pre - I) / I_pre]
  with k1 = 0.7, k2 = 0.3; W is the weight memory and I the feature (intermediate) memory, each
  relative to the previous best's, so their units cancel (the code counts elements: `cal_weight`,
  `cal_in`). The controller is trained on 100 R (`gen_trainingData_score`): `controller_label`.
- `paper`: R = lambda (acc - acc_pre) / acc_pre + (1 - lambda) (M_pre - M) / M_pre, M = W + I the
  total memory, lambda 0.5 or 0.8 (the README's two runs). The paper's exact formula is not
  confirmed from a file (memnas.md §3.4 [unverified]): this is the suite's reading of "lambda
  weights accuracy against memory", and `train.py`'s `--lamda` (default 0.8) is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nas_impl.errors import NasReproError

CODE_K1, CODE_K2 = 0.7, 0.3  # accuracy and memory weights of `score` (general.py)
CODE_WEIGHT_SHARE, CODE_FEATURE_SHARE = 0.3, 0.7  # inside the memory term
CONTROLLER_SCALE = 100.0  # the controller's regression labels are 100 R


@dataclass(frozen=True)
class Measured:
    """A network as the reward sees it: accuracy (any scale: only ratios are used) and its weight
    and feature memory (any unit, the same for every network of one search)."""

    acc: float
    weight_memory: float
    feature_memory: float

    @property
    def total_memory(self) -> float:
        return self.weight_memory + self.feature_memory


def _relative_gain(before: float, after: float, what: str) -> float:
    """(before - after) / before: positive when `after` is smaller."""
    if not before > 0:
        raise NasReproError(f"MemNAS reward: the previous best network's {what} must be positive, not {before!r}")
    return (before - after) / before


def code_reward(previous: Measured, candidate: Measured, k1: float = CODE_K1, k2: float = CODE_K2) -> float:
    accuracy = -_relative_gain(previous.acc, candidate.acc, "accuracy")
    memory = (CODE_WEIGHT_SHARE * _relative_gain(previous.weight_memory, candidate.weight_memory, "weight memory")
              + CODE_FEATURE_SHARE * _relative_gain(previous.feature_memory, candidate.feature_memory,
                                                    "feature memory"))
    return k1 * accuracy + k2 * memory


def paper_reward(previous: Measured, candidate: Measured, lam: float = 0.8) -> float:
    if not 0.0 <= lam <= 1.0:
        raise NasReproError(f"MemNAS reward: lambda must lie in [0, 1] (the paper's runs: 0.5, 0.8), not {lam!r}")
    accuracy = -_relative_gain(previous.acc, candidate.acc, "accuracy")
    memory = _relative_gain(previous.total_memory, candidate.total_memory, "total memory")
    return lam * accuracy + (1.0 - lam) * memory


REWARDS: dict[str, Callable[..., float]] = {"code": code_reward, "paper": paper_reward}


def controller_label(reward: float) -> float:
    """What the structure-correlation controller regresses: 100 R, as the official training data."""
    return CONTROLLER_SCALE * reward
