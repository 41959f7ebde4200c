"""Expected MACs of the super-network (differentiable) and exact MACs of its argmax shape.

Conventions follow `nas_impl.metrics.count_macs` (conv + linear MACs of one image, no bias,
BN, pooling). Widths are independent categoricals with plain-softmax probabilities; a block is
kept with probability P(stage depth > block index) (the reverse cumulative sum of the stage's
depth softmax). Each block's input is the output of the previous kept block, as in the inferred
network, so the first block of a stage sees the depth-weighted output of the previous stage.
Unlike TAS's released estimate, the inferred network's 1x1 shortcut convs are counted
(`include_shortcuts=False` drops them, as TAS's `estimated_FLOP` does, tas.md §5). With one-hot
distributions the result equals `argmax_macs` exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas_impl.metrics.macs import count_macs
from nas_impl.methods.tas.derive import derive_spec
from nas_impl.methods.tas.search_net import TASResNet, WidthConv
from nas_impl.models import build_model


@dataclass
class _Width:
    """A width distribution: probabilities over `choices` and the mean."""

    probs: torch.Tensor
    choices: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return (self.probs * self.choices).sum()


def _width(net: TASResNet, conv: WidthConv) -> _Width:
    n = len(conv.choices)
    probs = F.softmax(net.width_logits[conv.row, :n].double(), dim=-1)
    return _Width(probs, torch.tensor(conv.choices, dtype=probs.dtype, device=probs.device))


def _out_size(size: int, conv: WidthConv) -> int:
    return (size + 2 * (conv.kernel // 2) - conv.kernel) // conv.stride + 1


def _unequal_product(a: _Width, b: _Width) -> torch.Tensor:
    """E[a * b * (a != b)] for independent a, b: a stride-1 shortcut conv exists iff in != out."""
    prod = a.choices[:, None] * b.choices[None, :] * (a.choices[:, None] != b.choices[None, :])
    return a.probs @ prod @ b.probs


def expected_macs(net: TASResNet, include_shortcuts: bool = True) -> torch.Tensor:
    """Expected MACs (a float64 scalar with gradients w.r.t. the architecture logits)."""
    h, w = net.image_size
    stem = _width(net, net.stem)
    total = net.in_channels * stem.mean * net.stem.kernel ** 2 * h * w
    prev: _Width | None = stem  # width distribution of the block input, when it is one conv's
    prev_mean = stem.mean
    for s, stage in enumerate(net.stages):
        depth_p = F.softmax(net.depth_logits[s].double(), dim=-1)
        keep = depth_p.flip(0).cumsum(0).flip(0)  # keep[j] = P(depth >= choices[j])
        stage_out = 0
        for b, blk in enumerate(stage):
            # P(block b kept) = P(depth > b) = P(depth >= smallest choice > b).
            j = next(i for i, d in enumerate(net.depth_choices) if d > b)
            cin, macs = prev_mean, 0
            for conv in blk.convs:
                out = _width(net, conv)
                h, w = _out_size(h, conv), _out_size(w, conv)
                macs = macs + cin * out.mean * conv.kernel ** 2 * h * w
                cin = out.mean
            if include_shortcuts:
                if blk.stride > 1:
                    macs = macs + prev_mean * out.mean * h * w
                else:
                    assert prev is not None  # stride-1 blocks follow a single conv
                    macs = macs + _unequal_product(prev, out) * h * w
            total = total + keep[j] * macs
            if b + 1 in net.depth_choices:
                stage_out = stage_out + depth_p[net.depth_choices.index(b + 1)] * out.mean
            prev, prev_mean = out, out.mean
        prev, prev_mean = None, stage_out
    return total + prev_mean * net.num_classes


_CACHE: OrderedDict[str, int] = OrderedDict()


def argmax_macs(net: TASResNet) -> int:
    """Exact MACs of the derived (argmax) network, counted by `count_macs` (cached per shape)."""
    spec = derive_spec(net)
    key = repr(sorted(spec.items())) + repr(net.image_size)
    if key not in _CACHE:
        # Building the model draws initial weights: keep the search's random stream untouched, so that
        # a search does not depend on what this cache held.
        with torch.random.fork_rng(devices=[]):
            _CACHE[key] = count_macs(build_model(spec), (net.in_channels, *net.image_size))
        if len(_CACHE) > 256:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]
