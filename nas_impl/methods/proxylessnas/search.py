"""One ProxylessNAS step of each kind: a weight step on a sampled path, a gradient architecture
step (binary gates, `full_v2` / `two` / `full`) and a REINFORCE architecture step, as the
official `nas_manager.py` (`train`, `gradient_step`, `rl_update_step`) runs them.

`Costs` is what the hardware term reads: a table key -> value (LUT latency in ms, or MMACs),
the keys every sampled net has, and per edge each candidate's key (None = Zero).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas_impl.methods.proxylessnas.mixed_edge import MovingAverageBaseline, reinforce_loss, reinforce_reward
from nas_impl.methods.proxylessnas.search_net import ProxylessSuperNet
from nas_impl.metrics.latency_lut import expected_latency, latency_loss, network_latency
from nas_impl.tasks.image import count_top1, top1_percent
from nas_impl.training.recipe import Recipe

Batch = tuple[torch.Tensor, torch.Tensor]


class CostTable:
    """Key -> a value the search trades against (MMACs), with `lookup` as a LatencyTable's."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = dict(values)

    def lookup(self, key: str) -> float:
        return self.values[key]


@dataclass
class Costs:
    table: object  # a LatencyTable or a CostTable: anything with lookup(key) -> float
    fixed: list[str]
    edges: list[list[str | None]]
    unit: str  # 'ms' or 'MMACs'

    def expected(self, net: ProxylessSuperNet, probabilities: str = "sampled") -> torch.Tensor:
        """E[cost], differentiable in alpha, under the edges' probabilities: "sampled", those of the
        last sampling (the official `current_prob_over_ops`: the pair's in mode 'two'); "p",
        softmax(alpha); "uniform", the space's mean."""
        def probs_of(edge) -> torch.Tensor:
            if probabilities == "uniform":
                return torch.full_like(edge.alpha, 1.0 / edge.n_choices).detach()
            if probabilities == "sampled" and edge.current_probs is not None:
                return edge.current_probs
            return edge.probs

        return expected_latency(self.table, self.fixed, [(probs_of(edge), keys)
                                                         for edge, keys in zip(net.edges(), self.edges)])

    def fingerprint(self) -> str:
        """A digest of every value the search reads: a checkpoint made with another table is not resumed."""
        keys = sorted({*self.fixed, *(k for keys in self.edges for k in keys if k is not None)})
        values = json.dumps([[k, self.table.lookup(k)] for k in keys])
        return hashlib.sha256(values.encode()).hexdigest()[:16]

    def of(self, net: ProxylessSuperNet, indices: list[int]) -> float:
        """The cost of one sampled (or the derived) net."""
        return network_latency(self.table, net.chosen_cost_keys(indices))


def warmup_recipe(weights: Recipe, epochs: int, lr_max: float) -> Recipe:
    """The weight recipe of the warm-up: a per-step cosine from lr_max to 0 over all its epochs, no
    warm-up of its own (the official `warm_up`, whose lr_max 0.05 is hard-coded)."""
    return dataclasses.replace(weights, epochs=epochs, lr=lr_max, schedule="cosine", min_lr=0.0, warmup_epochs=0.0)


def arch_schedule(steps: int, every: int, updates: int) -> dict[int, int]:
    """Gradient: after weight step i (0-based), `updates` architecture steps when (i + 1) % every == 0
    (the official `GradientArchSearchConfig.get_update_schedule`)."""
    return {i: updates for i in range(steps) if (i + 1) % every == 0}


def reinforce_schedule(steps: int, updates_per_epoch: int) -> dict[int, int]:
    """REINFORCE: `updates_per_epoch` updates spread over the epoch's steps (the official
    `RLArchSearchConfig.get_update_schedule` with `get_split_list`): the steps are cut into that
    many near-equal segments, one update after each; with fewer steps, one update per step."""
    sizes = [steps // updates_per_epoch + (1 if i < steps % updates_per_epoch else 0)
             for i in range(updates_per_epoch)]
    ends, total = set(), 0
    for size in sizes:
        total += size
        if total > 0:
            ends.add(total - 1)
    return {i: 1 for i in sorted(ends)}


def weight_step(net: ProxylessSuperNet, w_opt: torch.optim.Optimizer, batch: Batch,
                label_smoothing: float = 0.0) -> dict[str, float]:
    """Sample one path per edge from p (uniform at alpha's init: the warm-up), train its weights."""
    net.train()
    net.set_mode(None)
    net.binarize()
    x, y = batch
    logits = net(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    w_opt.zero_grad(set_to_none=True)
    loss.backward()
    w_opt.step()
    return {"loss": loss.item(), "top1": top1_percent(logits, y)}


@dataclass(frozen=True)
class HardwareLoss:
    form: str  # 'mul#log', 'add#linear' or 'add' (nas_impl.metrics.latency_lut.latency_loss)
    ref: float
    params: dict[str, float]

    @classmethod
    def of(cls, settings, ref: float) -> HardwareLoss:
        """The recipe's loss form with its own parameters (ProxylessSettings' loss_alpha/beta/lambda)."""
        params = ({"alpha": settings.loss_alpha, "beta": settings.loss_beta} if settings.loss_form == "mul#log"
                  else {"lam": settings.loss_lambda})
        return cls(settings.loss_form, ref, params)

    def __call__(self, ce: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        return latency_loss(ce, expected, self.ref, self.form, **self.params)


def gradient_arch_step(net: ProxylessSuperNet, a_opt: torch.optim.Optimizer, batch: Batch, mode: str,
                       costs: Costs | None = None, hardware_loss: HardwareLoss | None = None) -> dict[str, float]:
    """Binary gates in `mode`, CE on a held-out batch (BN in train mode, no label smoothing), plus
    the hardware term on E[cost]; alpha.grad from the gates (BinaryConnect) and from E[cost]."""
    net.train()
    net.set_mode(mode)
    try:
        net.binarize()
        x, y = batch
        logits = net(x)
        ce = F.cross_entropy(logits, y)
        expected = None if costs is None else costs.expected(net)
        loss = ce if expected is None else hardware_loss(ce, expected)
        net.zero_grad(set_to_none=True)  # the official net.zero_grad(): weights, alphas and gates
        loss.backward()
        net.set_arch_param_grad()
        a_opt.step()
        if mode == "two":
            net.rescale_updated_arch_param()
    finally:
        net.set_mode(None)
    return {"arch_loss": loss.item(), "arch_ce": ce.item(),
            "expected": float("nan") if expected is None else expected.item(), "arch_top1": top1_percent(logits, y)}


def reinforce_step(net: ProxylessSuperNet, a_opt: torch.optim.Optimizer, batch: Batch, samples: int,
                   baseline: MovingAverageBaseline, costs: Costs | None = None, ref: float | None = None,
                   tradeoff: float = 0.1) -> dict[str, float]:
    """`samples` nets sampled from p, each scored on the same held-out batch (no_grad, BN in train
    mode: the official code updates the running statistics here too); reward acc x (ref / cost)^tradeoff;
    the baseline is updated with this batch before the advantages; one optimizer step."""
    net.train()
    net.set_mode(None)
    x, y = batch
    log_probs, rewards, values = [], [], []
    for _ in range(samples):
        indices = net.binarize()
        with torch.no_grad():
            acc = int(count_top1(net(x), y)) / y.numel()
        value = None if costs is None else costs.of(net, indices)
        rewards.append(reinforce_reward(acc, value, ref, tradeoff))
        values.append(float("nan") if value is None else value)
        log_probs.append(net.log_prob())
    b = baseline.update(rewards)
    loss = reinforce_loss(log_probs, rewards, b)
    a_opt.zero_grad(set_to_none=True)
    loss.backward()
    a_opt.step()
    return {"arch_loss": loss.item(), "reward": sum(rewards) / len(rewards), "baseline": b,
            "expected": sum(values) / len(values)}


@torch.no_grad()
def held_out_top1(net: ProxylessSuperNet, batches: Iterable[Batch], indices: list[int]) -> float:
    """Top-1 (%) of one net (`indices`, usually the argmax) over the held-out part, BN in train mode
    (the official `validate(use_train_mode=True)` of the search)."""
    was_training = net.training
    net.train()
    net.set_chosen(indices)
    correct = seen = 0
    for x, y in batches:
        correct += int(count_top1(net(x), y))
        seen += y.numel()
    net.train(was_training)
    return 100.0 * correct / max(seen, 1)
