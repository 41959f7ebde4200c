"""TAS's FLOP-constrained architecture loss (tas.md §3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flop_loss(expected: torch.Tensor, current: float, target: float, tolerance: float,
              paper_tolerance: bool = False) -> torch.Tensor:
    """-log E[MACs] when the argmax shape is too small, +log E[MACs] when too large, else 0.

    `current` is the argmax shape's MACs. The released code calls it too large as soon as
    current > target; `paper_tolerance=True` waits for current > target + tolerance
    (tas.md §6 #3). Units cancel in the gradient of log, so any MAC unit works.
    """
    if current < target - tolerance:
        return -torch.log(expected)
    if current > (target + tolerance if paper_tolerance else target):
        return torch.log(expected)
    return expected.new_zeros(())


def arch_loss(logits: torch.Tensor, labels: torch.Tensor, expected: torch.Tensor, current: float,
              target: float, tolerance: float, lambda_: float = 2.0,
              paper_tolerance: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(CE + lambda_ * flop loss, CE, flop loss)."""
    ce = F.cross_entropy(logits, labels)
    flop = flop_loss(expected, current, target, tolerance, paper_tolerance)
    return ce + lambda_ * flop.to(ce.dtype), ce, flop
