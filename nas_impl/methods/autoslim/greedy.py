"""Greedy slimming: from the largest configuration, repeatedly remove one width step from the
group whose removal keeps the held-out accuracy highest (BN on batch statistics, as the official
`slimming()`), recording the configuration at each MACs target on the way down, in one pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.methods.autoslim.slimmable import batch_statistics
from nas_impl.methods.autoslim.supernet import Config, SlimmableNet, accuracy


@dataclass
class Found:
    target: str
    target_macs: float
    config: Config
    macs: int
    previous_macs: int  # one step earlier: above the target
    step: int
    top1: float  # held-out accuracy (batch statistics) at this configuration


@dataclass
class SlimResult:
    found: list[Found]
    steps: list[dict[str, Any]] = field(default_factory=list)


def slimmed(config: Config, group: int) -> Config:
    return config[:group] + (config[group] - 1,) + config[group + 1 :]


def greedy_slim(model: SlimmableNet, batches: list[tuple[torch.Tensor, torch.Tensor]],
                targets: list[tuple[str, float]], on_step: Callable[[dict[str, Any]], None] | None = None) -> SlimResult:
    """`targets`: (label, MACs), any order. Stops once the smallest target is recorded."""
    space = model.space
    pending = sorted(targets, key=lambda t: -t[1])
    config = space.largest()
    macs = previous = space.macs(config)
    with batch_statistics(model):

        def score(candidate: Config) -> float:
            model.set_config(candidate)
            return accuracy(model, batches)

        top1 = score(config)
        result = SlimResult(found=[])
        step = 0
        while True:
            while pending and macs <= pending[0][1]:
                label, target_macs = pending.pop(0)
                result.found.append(Found(label, target_macs, config, macs, previous, step, top1))
            if not pending:
                return result
            movable = [g for g, k in enumerate(config) if k > 0]
            if not movable:
                raise NasReproError(
                    f"greedy slimming cannot reach target {pending[0][0]} ({pending[0][1] / 1e6:.2f}M MACs): the "
                    f"smallest configuration has {macs / 1e6:.2f}M; lower the search recipe's 'width_min'")
            start = time.perf_counter()
            scores = [(score(slimmed(config, g)), g) for g in movable]
            top1, group = max(scores, key=lambda s: (s[0], -s[1]))  # the first group on ties
            config, previous = slimmed(config, group), macs
            macs = space.macs(config)
            step += 1
            width = space.grids[group][config[group]]
            row = {"step": step, "group": group, "entries": " ".join(map(str, space.groups[group])),
                   "width": width, "macs": macs, "held_out_top1": top1, "candidates": len(movable),
                   "step_s": time.perf_counter() - start}
            result.steps.append(row)
            if on_step is not None:
                on_step(row)
