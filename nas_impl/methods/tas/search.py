"""The temperature schedule and one alternating TAS search step (weights, then architecture)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nas_impl.methods.tas.flops import band_macs, expected_macs
from nas_impl.methods.tas.loss import arch_loss
from nas_impl.methods.tas.search_net import TASResNet
from nas_impl.tasks.image import count_top1, top1_percent

Batch = tuple[torch.Tensor, torch.Tensor]


def tau_at(epoch: float, total: int, tau_max: float = 5.0, tau_min: float = 0.1,
           schedule: str = "cosine") -> float:
    """Gumbel temperature at `epoch` of `total`: cosine 5 -> 0.1 in the released code, linear
    10 -> 0.1 in the paper (tas.md §6 #2; pass tau_max=10, schedule='linear')."""
    frac = epoch / total
    if schedule == "cosine":
        return tau_min + (tau_max - tau_min) * (1 + math.cos(math.pi * frac)) / 2
    if schedule == "linear":
        return tau_max - (tau_max - tau_min) * frac
    raise ValueError(f"unknown tau schedule '{schedule}': use 'cosine' or 'linear'")


def search_step(net: TASResNet, w_opt: torch.optim.Optimizer, a_opt: torch.optim.Optimizer,
                train_batch: Batch, valid_batch: Batch, tau: float, target_macs: float,
                tolerance: float, lambda_: float = 2.0, paper_tolerance: bool = False,
                generator: torch.Generator | None = None, flop_rule: str = "official") -> dict[str, float]:
    """Weights on `train_batch` (CE), then architecture on `valid_batch` (CE + lambda_ * FLOP
    loss, with MACs under `flop_rule`). `w_opt` must hold only `net.weight_parameters()`, `a_opt`
    only `net.arch_parameters()`."""
    net.train()
    x, y = train_batch
    w_opt.zero_grad(set_to_none=True)
    logits = net(x, tau, generator)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    w_opt.step()

    xv, yv = valid_batch
    a_opt.zero_grad(set_to_none=True)
    expected = expected_macs(net, flop_rule)
    current = band_macs(net, flop_rule)
    valid_logits = net(xv, tau, generator)
    total, ce, flop = arch_loss(valid_logits, yv, expected, current, target_macs, tolerance, lambda_,
                                paper_tolerance)
    total.backward()
    a_opt.step()
    w_opt.zero_grad(set_to_none=True)  # the arch half's weight gradients are not used
    return {
        "loss": loss.item(),
        "arch_loss": total.item(),
        "arch_ce": ce.item(),
        "flop_loss": flop.item(),
        "expected_macs": expected.item(),
        "band_macs": float(current),
        "tau": tau,
        "train_top1": top1_percent(logits, y),
        "valid_top1": top1_percent(valid_logits, yv),
    }


@torch.no_grad()
def eval_top1(net: TASResNet, loader, tau: float) -> float:
    """Top-1 (%) of a separate pass over `loader` in eval mode (BN running statistics) through the
    sampled super-network at temperature `tau`: the official script's per-epoch validation, whose
    accuracy picks its 'best' shape."""
    was_training = net.training
    net.eval()
    correct, seen = 0, 0
    for x, y in loader:
        correct += int(count_top1(net(x, tau), y))
        seen += y.numel()
    net.train(was_training)
    return 100.0 * correct / max(seen, 1)
