"""An exponential moving average of a model's trainable weights, as TensorFlow's
`ExponentialMovingAverage(decay, num_updates=global_step)` keeps it (AutoShrink's ImageNet training
wraps its optimizer in `MovingAverageOptimizer(opt, 0.999, num_updates=global_step)`).

The average starts at the initial weights. After the n-th optimizer step (n = 1, 2, ...), with
d = min(decay, (1 + n) / (10 + n)): shadow = d x shadow + (1 - d) x weight. Buffers (BN running
statistics) are not averaged: an evaluation with the average uses the model's own buffers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def rate(self) -> float:
        """The decay of the next update (TF's num_updates rule)."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        d = self.rate()
        for shadow, p in zip(self.shadow, self.params):
            shadow.lerp_(p.detach(), 1 - d)
        self.updates += 1

    def weights(self) -> dict[torch.Tensor, torch.Tensor]:
        """Each trainable parameter's average, as `Trainer.evaluation_weights` swaps them in."""
        return dict(zip(self.params, self.shadow))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": [s.clone() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["shadow"]) != len(self.shadow):
            raise ValueError(f"the checkpoint's moving average has {len(state['shadow'])} tensors, the model "
                             f"{len(self.shadow)} trainable parameters")
        self.updates = int(state["updates"])
        with torch.no_grad():
            for shadow, saved in zip(self.shadow, state["shadow"]):
                shadow.copy_(saved)
