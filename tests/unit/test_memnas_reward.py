"""MemNAS's reward in both forms on hand values (nas_impl.methods.memnas.reward)."""

from __future__ import annotations

import pytest

from nas_impl.errors import NasReproError
from nas_impl.methods.memnas.reward import REWARDS, Measured, code_reward, controller_label, paper_reward

BEST = Measured(acc=0.80, weight_memory=1000.0, feature_memory=2000.0)
CANDIDATE = Measured(acc=0.84, weight_memory=900.0, feature_memory=2100.0)


def test_the_code_form_weighs_accuracy_and_both_memories_as_general_py():
    # acc +5% relative; weights 10% smaller; features 5% larger:
    # 0.7 * 0.05 + 0.3 * (0.3 * 0.10 + 0.7 * -0.05) = 0.035 - 0.0015
    assert code_reward(BEST, CANDIDATE) == pytest.approx(0.0335)
    assert controller_label(code_reward(BEST, CANDIDATE)) == pytest.approx(3.35)
    assert code_reward(BEST, BEST) == 0.0
    assert code_reward(BEST, CANDIDATE, k1=1.0, k2=0.0) == pytest.approx(0.05)  # accuracy alone


def test_the_paper_form_trades_accuracy_against_total_memory_by_lambda():
    assert CANDIDATE.total_memory == BEST.total_memory == 3000.0
    assert paper_reward(BEST, CANDIDATE, lam=0.8) == pytest.approx(0.8 * 0.05)  # same total: accuracy only
    smaller = Measured(acc=0.84, weight_memory=900.0, feature_memory=1900.0)  # 2800: 1/15 less memory
    assert paper_reward(BEST, smaller, lam=0.5) == pytest.approx(0.5 * 0.05 + 0.5 / 15)
    assert paper_reward(BEST, smaller, lam=0.5) > paper_reward(BEST, smaller, lam=0.8)  # memory weighs more
    assert REWARDS["paper"] is paper_reward and REWARDS["code"] is code_reward


@pytest.mark.parametrize("previous, lam, message", [
    (Measured(0.0, 1.0, 1.0), 0.8, "accuracy must be positive"),
    (Measured(0.8, 0.0, 1.0), 0.8, "weight memory must be positive"),
    (Measured(0.8, 1.0, 1.0), 1.5, "lambda must lie in"),
])
def test_a_reward_that_cannot_be_computed_says_why(previous, lam, message):
    with pytest.raises(NasReproError, match=message):
        code_reward(previous, CANDIDATE) if "lambda" not in message else paper_reward(previous, CANDIDATE, lam)
