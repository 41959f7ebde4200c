"""The slimmable super-network and its training with the sandwich rule.

Every step trains the largest configuration on the labels, then the smallest and n - 2 random
configurations (every group at an independent random width), each on the largest one's detached
soft predictions when in-place distillation is on, else on the labels; the gradients of all n
add up into one optimizer step (universally slimmable training, autoslim.md §3.1).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.methods.autoslim.slimmable import make_slimmable, recalibrate_bn, set_widths
from nas_impl.methods.autoslim.space import ChannelSpace
from nas_impl.models import build_model
from nas_impl.tasks.image import count_top1, top1_percent
from nas_impl.training.losses import classification_loss

Config = tuple[int, ...]


class SlimmableNet(nn.Module):
    """A family network at its full (super-network) widths, runnable at any configuration."""

    def __init__(self, space: ChannelSpace) -> None:
        super().__init__()
        self.space = space
        self.net = make_slimmable(build_model(space.spec))
        self.config: Config = space.largest()

    def set_config(self, config: Config) -> None:
        set_widths(self.net, self.space.conv_widths(config))
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution (the official CrossEntropyLossSoft)."""
    return -(soft_targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def sandwich_configs(space: ChannelSpace, n: int, generator: torch.Generator) -> list[Config]:
    return [space.largest(), space.smallest()] + [space.random(generator) for _ in range(n - 2)]


def sandwich_step(model: SlimmableNet, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor],
                  configs: list[Config], inplace_distill: bool, label_smoothing: float = 0.0) -> dict[str, float]:
    """One optimizer step over `configs` (the first is the largest: it alone sees the labels
    when distilling). Returns the largest and smallest configurations' loss and top-1 (%)."""
    x, y = batch
    optimizer.zero_grad(set_to_none=True)
    out: dict[str, float] = {}
    soft = None
    for i, config in enumerate(configs):
        model.set_config(config)
        logits = model(x)
        if i > 0 and inplace_distill:
            loss = soft_cross_entropy(logits, soft)
        else:
            loss = classification_loss(logits, y, label_smoothing)
        loss.backward()
        if i == 0:
            soft = F.softmax(logits.detach().float(), dim=1)
        if i < 2:
            name = "largest" if i == 0 else "smallest"
            out[f"loss_{name}"] = float(loss.detach())
            out[f"top1_{name}"] = top1_percent(logits, y)
    optimizer.step()
    model.set_config(model.space.largest())
    return out


@torch.no_grad()
def accuracy(model: SlimmableNet, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    correct = total = 0
    for x, y in batches:
        correct += int(count_top1(model(x), y))
        total += len(y)
    return 100.0 * correct / total


def calibrated_accuracy(model: SlimmableNet, config: Config, calibration: list[torch.Tensor],
                        batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """Top-1 of one configuration with running BN statistics recalibrated for it (only BN buffers change)."""
    model.set_config(config)
    recalibrate_bn(model, calibration)
    model.eval()
    return {"macs": model.space.macs(config), "top1": accuracy(model, batches)}
