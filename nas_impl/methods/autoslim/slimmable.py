"""Slimmable layers: one set of weights that runs at any width up to its full width.

A slimmable layer at width w computes exactly what a plain layer built with the first w
channels (and the first w rows/columns of the weights) computes. Convolutions slice their
output channels to `active_out` (set per configuration) and their input channels to the
incoming tensor; depthwise convolutions follow their input; BN and the classifier follow their
input. BN statistics are shared across widths (as in universally slimmable networks), so they
are recalibrated per configuration before a configuration is evaluated with running statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F


class SlimConv2d(nn.Conv2d):
    active_out: int | None = None  # None: full width

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels == self.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = x.shape[1]
        if self.depthwise:
            out, groups = cin, cin
        else:
            out, groups = self.active_out or self.out_channels, self.groups
        if out == self.out_channels and cin == self.in_channels:
            return super().forward(x)
        weight = self.weight[:out, : cin // groups]
        bias = None if self.bias is None else self.bias[:out]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)


class SlimBatchNorm2d(nn.BatchNorm2d):
    """BN over the first C channels of its parameters and running statistics (C = input width)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        keep_stats = not self.training or self.track_running_stats
        # Slices are views: a training-mode update writes into the shared running statistics.
        mean = self.running_mean[:c] if keep_stats and self.running_mean is not None else None
        var = self.running_var[:c] if keep_stats and self.running_var is not None else None
        weight = None if self.weight is None else self.weight[:c]
        bias = None if self.bias is None else self.bias[:c]
        return F.batch_norm(x, mean, var, weight, bias, use_batch, factor, self.eps)


class SlimLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[:, : x.shape[-1]], self.bias)


_SLIM = {nn.Conv2d: SlimConv2d, nn.BatchNorm2d: SlimBatchNorm2d, nn.Linear: SlimLinear}


def make_slimmable(model: nn.Module) -> nn.Module:
    """Turn every Conv2d, BatchNorm2d and Linear of `model` into its slimmable subclass, in place.

    Parameters, buffers and state_dict keys are unchanged (the subclasses add no state).
    """
    for module in model.modules():
        slim = _SLIM.get(type(module))
        if slim is not None:
            module.__class__ = slim
    return model


def slim_convs(model: nn.Module) -> Iterator[tuple[str, SlimConv2d]]:
    """The slimmable convolutions whose output width is set per configuration (not depthwise)."""
    for name, module in model.named_modules():
        if isinstance(module, SlimConv2d) and not module.depthwise:
            yield name, module


def set_widths(model: nn.Module, out_channels: dict[str, int]) -> None:
    """Set each slimmable conv's output width by module name (every conv must be named)."""
    for name, conv in slim_convs(model):
        width = out_channels[name]
        if not 1 <= width <= conv.out_channels:
            raise ValueError(f"conv '{name}': width {width} outside 1..{conv.out_channels}")
        conv.active_out = width


def batchnorms(model: nn.Module) -> Iterable[nn.BatchNorm2d]:
    return (m for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Evaluate with BN on the batch's own statistics, leaving the running statistics untouched
    (how AutoSlim scores candidates while slimming); everything else in eval mode."""
    was_training = model.training
    bns = list(batchnorms(model))
    tracked = [bn.track_running_stats for bn in bns]
    model.eval()
    for bn in bns:
        bn.train()
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn, track in zip(bns, tracked):
            bn.track_running_stats = track
        model.train(was_training)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset BN running statistics and re-estimate them as the cumulative average over `batches`
    at the model's current widths; only BN buffers change. Returns the number of batches used."""
    was_training = model.training
    bns = list(batchnorms(model))
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.eval()
    for bn in bns:
        bn.train()
    count = 0
    try:
        for x in batches:
            model(x)
            count += 1
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.train(was_training)
    return count
