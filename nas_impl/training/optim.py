"""Optimizer construction from a recipe."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from nas_impl.training.recipe import Recipe


def parameter_groups(model: nn.Module | Iterable[nn.Parameter], weight_decay: float,
                     no_decay_bn_bias: bool) -> list[dict]:
    params = [p for p in (model.parameters() if isinstance(model, nn.Module) else model) if p.requires_grad]
    if not no_decay_bn_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    # BN weights/biases and all biases are the parameters with fewer than two dimensions.
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module | Iterable[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over a model's (or an explicit list of) trainable parameters."""
    groups = parameter_groups(model, recipe.weight_decay, recipe.no_decay_bn_bias)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    return torch.optim.Adam(groups, lr=recipe.lr, betas=recipe.betas)


def build_averaged_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Averaged SGD as AWD-LSTM switches to it (`asgd_nonmono`): torch's ASGD with t0 = 0 and
    lambd = 0, so the step is plain SGD and the average starts at once."""
    groups = parameter_groups(model, recipe.weight_decay, recipe.no_decay_bn_bias)
    return torch.optim.ASGD(groups, lr=recipe.lr, t0=0, lambd=0.0)


def averaged_weights(optimizer: torch.optim.Optimizer) -> dict[torch.Tensor, torch.Tensor]:
    """Each parameter's running average ('ax') in an ASGD optimizer; parameters it has not yet
    stepped are absent."""
    return {p: state["ax"] for p, state in optimizer.state.items() if "ax" in state}
