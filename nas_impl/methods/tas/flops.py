"""MACs in TAS's search: the band value and the differentiable expectation, by either of two rules.

Conventions follow `nas_impl.metrics.count_macs` (conv + linear MACs of one image, no bias, BN,
pooling). Widths are independent categoricals with plain-softmax probabilities; a block is kept
with probability P(stage depth > block index) (the reverse cumulative sum of the stage's depth
softmax).

`official` (the default) is what the official search computes (AutoDL-Projects f46486e,
`SearchCifarResNet.py`): the band value is `get_flop("genotype")`, the rule behind the released
configs' `estimated_FLOP` (`estimated_macs`), and the expectation is the one its search forward
returns (`expected_macs`). Both read every layer's input width from the previous layer of the
*full-depth* chain, so the first block of a stage and the classifier see the widths chosen for
blocks the depth choice may drop; the genotype rule counts a block's 1x1 shortcut conv where the
search network has one (strided, or unequal full widths) or the chosen widths differ, the
expectation only where the search network has one.

`built` counts the network that is actually built from the argmax shape (`argmax_macs`, exact)
and takes its exact expectation: each block's input is the output of the previous kept block,
and a stride-1 shortcut conv exists iff its input and output widths differ. With one-hot
distributions the expectation then equals `argmax_macs`. Every reported MAC count is the built
network's, whichever rule the search follows.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nas_impl.metrics.macs import count_macs
from nas_impl.methods.tas.derive import derive_spec
from nas_impl.methods.tas.search_net import TASResNet, WidthConv
from nas_impl.models import build_model, parse_spec
from nas_impl.models.resnet import CONVS_PER_BLOCK, plan_stages
from nas_impl.methods.tas.recipe import FLOP_RULES


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


def _out_size(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _unequal_product(a: _Width, b: _Width) -> torch.Tensor:
    """E[a * b * (a != b)] for independent a, b: a stride-1 shortcut conv exists iff in != out."""
    prod = a.choices[:, None] * b.choices[None, :] * (a.choices[:, None] != b.choices[None, :])
    return a.probs @ prod @ b.probs


def _keep_probabilities(net: TASResNet, s: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The stage's depth softmax and, per block, P(block kept) = P(depth > block index)."""
    depth_p = F.softmax(net.depth_logits[s].double(), dim=-1)
    at_least = depth_p.flip(0).cumsum(0).flip(0)  # at_least[j] = P(depth >= choices[j])
    kept = [at_least[next(j for j, d in enumerate(net.depth_choices) if d > b)] for b in range(len(net.stages[s]))]
    return depth_p, kept


def expected_macs(net: TASResNet, rule: str = "official") -> torch.Tensor:
    """Expected MACs under `rule` (a float64 scalar with gradients w.r.t. the architecture logits)."""
    if rule not in FLOP_RULES:
        raise ValueError(f"unknown FLOP rule '{rule}': use one of {', '.join(FLOP_RULES)}")
    h, w = net.image_size
    stem = _width(net, net.stem)
    total = net.in_channels * stem.mean * net.stem.kernel ** 2 * h * w
    prev: _Width | None = stem  # the block input's width distribution, when it is one conv's
    prev_mean = stem.mean
    for s, stage in enumerate(net.stages):
        depth_p, kept = _keep_probabilities(net, s)
        stage_out = 0
        for b, blk in enumerate(stage):
            cin, macs = prev_mean, 0
            for conv in blk.convs:
                out = _width(net, conv)
                h, w = _out_size(h, conv.kernel, conv.stride), _out_size(w, conv.kernel, conv.stride)
                macs = macs + cin * out.mean * conv.kernel ** 2 * h * w
                cin = out.mean
            if rule == "official":
                if blk.shortcut is not None:
                    macs = macs + prev_mean * out.mean * h * w
            elif blk.stride > 1:
                macs = macs + prev_mean * out.mean * h * w
            else:
                assert prev is not None  # under the built rule, stride-1 blocks follow a single conv
                macs = macs + _unequal_product(prev, out) * h * w
            total = total + kept[b] * macs
            if b + 1 in net.depth_choices:
                stage_out = stage_out + depth_p[net.depth_choices.index(b + 1)] * out.mean
            prev, prev_mean = out, out.mean
        if rule == "built":  # the next stage reads the depth-weighted exit, not the full-depth chain's
            prev, prev_mean = None, stage_out
    return total + prev_mean * net.num_classes


def estimated_macs(spec: dict[str, Any], image_size: tuple[int, int]) -> int:
    """The released configs' `estimated_FLOP` (in MACs) of a `resnet-cifar` or `resnet-imagenet`
    shape: the official `get_flop("genotype")` rule (see the module docstring). The ImageNet stem is
    a 7x7 stride-2 conv counted before its max pool, as `SearchImagenetResNet.py` counts it."""
    parsed = parse_spec(spec)
    family = spec["family"]
    if family not in ("resnet-cifar", "resnet-imagenet"):
        raise ValueError(f"the TAS FLOP rule counts ResNets, not family '{family}'")
    block, depths = parsed.block, parsed.stage_depths
    channels = parsed.channel_list()
    full = parse_spec({**spec, "channels": None, "blocks": None}).channel_list()
    kept = list(spec.get("blocks") or depths)
    h, w = image_size
    if family == "resnet-cifar":
        stem_kernel, stem_stride = 3, 1
    else:
        stem_kernel, stem_stride = 7, 2
    h, w = _out_size(h, stem_kernel, stem_stride), _out_size(w, stem_kernel, stem_stride)
    total = parsed.in_channels * channels[0] * stem_kernel ** 2 * h * w
    if family == "resnet-imagenet":
        h, w = _out_size(h, 3, 2), _out_size(w, 3, 2)  # the stem's max pool
    per_block = CONVS_PER_BLOCK[block]
    layers = plan_stages(channels, depths, depths, block)  # the full-depth chain
    full_layers = plan_stages(full, depths, depths, block)
    for stage, full_stage, keep in zip(layers, full_layers, kept):
        for b, ((cin, widths, stride), (full_in, full_widths, _)) in enumerate(zip(stage, full_stage)):
            kernels = [3, 3] if per_block == 2 else [1, 3, 1]
            strides = [stride, 1] if per_block == 2 else [1, stride, 1]
            macs, c = 0, cin
            for k, st, cout in zip(kernels, strides, widths):
                h_out, w_out = _out_size(h, k, st), _out_size(w, k, st)
                macs += c * cout * k * k * h_out * w_out
                h, w, c = h_out, w_out, cout
            if stride > 1 or full_in != full_widths[-1] or cin != widths[-1]:
                macs += cin * widths[-1] * h * w
            if b < keep:
                total += macs
    return total + channels[-1] * parsed.num_classes


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


def band_macs(net: TASResNet, rule: str = "official") -> int:
    """The argmax shape's MACs that the FLOP loss and the band check compare with the target."""
    if rule == "official":
        return estimated_macs(derive_spec(net), net.image_size)
    return argmax_macs(net)
