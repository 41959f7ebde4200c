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
    if recipe.optimizer == "rmsprop_tf":
        return TFRMSprop(groups, lr=recipe.lr, decay=recipe.rmsprop_decay, momentum=recipe.momentum,
                         eps=recipe.rmsprop_eps)
    return torch.optim.Adam(groups, lr=recipe.lr, betas=recipe.betas)


class TFRMSprop(torch.optim.Optimizer):
    """TensorFlow 1's `RMSPropOptimizer` (ApplyRMSProp), which torch's RMSprop does not match: the
    mean square starts at 1, not 0, and eps is inside the square root. Per step, with g the
    gradient plus weight_decay x w (TF's L2 loss term, coupled):
        ms = decay ms + (1 - decay) g^2;  mom = momentum mom + lr g / sqrt(ms + eps);  w -= mom"""

    def __init__(self, params, lr: float, decay: float = 0.9, momentum: float = 0.0, eps: float = 1e-10,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "decay": decay, "momentum": momentum, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 (torch's signature)
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["ms"] = torch.ones_like(p)
                    state["mom"] = torch.zeros_like(p)
                ms, mom = state["ms"], state["mom"]
                ms.mul_(group["decay"]).addcmul_(grad, grad, value=1 - group["decay"])
                mom.mul_(group["momentum"]).addcdiv_(grad, ms.add(group["eps"]).sqrt_(), value=group["lr"])
                p.sub_(mom)
        return loss


def build_averaged_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Averaged SGD as AWD-LSTM switches to it (`asgd_nonmono`): torch's ASGD with t0 = 0 and
    lambd = 0, so the step is plain SGD and the average starts at once."""
    groups = parameter_groups(model, recipe.weight_decay, recipe.no_decay_bn_bias)
    return torch.optim.ASGD(groups, lr=recipe.lr, t0=0, lambd=0.0)


def averaged_weights(optimizer: torch.optim.Optimizer) -> dict[torch.Tensor, torch.Tensor]:
    """Each parameter's running average ('ax') in an ASGD optimizer; parameters it has not yet
    stepped are absent."""
    return {p: state["ax"] for p, state in optimizer.state.items() if "ax" in state}
