"""Family `shrink-cnn`: AutoShrink's cell network (Zhang et al. 2020), the released ShrinkCNN-A/B
and the search-time network of the CNN shrink search (../shared/reference/autoshrink.md §2.1, §3.1).

Official sources (lordzth666/AutoShrink@b37564d): `searching/cnn/util_concat.py`
(`convert_mask_to_proto`: the cell), `searching/cnn/metagraph.py` (`add_to_proto`: stages;
`optimize_mask`: pruning), `api/proto/contrib.py` (stems and heads), `api/network/tflayers/`
(`add.py`, `utilities.py`: layers), `evaluation/cnn/shrinkCNN-{A,B}-release-repro.prototxt`.

The cell is a DAG over `nodes` nodes given by `edges` ([i, j] pairs, i < j):

- node 0 is the cell input, max-pooled (`pool` x `pool`, stride `pool`) when the cell is the
  first of a stage with pool > 1;
- node j >= 1 runs `ops[j - 1]` on the concatenation, in node order, of its predecessors:
  `conv1x1` = 1x1 conv -> BN -> act; `sep3x3` = 3x3 depthwise -> BN -> act -> 1x1 conv -> BN ->
  act (the official `separable_conv2d_v1`). Every node has the stage's `filters` channels;
- only what is reachable from node 0 is built: a node without a reachable predecessor is dropped
  with its edges (no parameters), as the official code drops them (`nas_impl.models.dag.reachable_edges`);
- the cell output is the concatenation, in node order, of the reachable nodes without successors
  (node 0 itself when there is no edge);
- with `residual`, those output nodes are linear (no final activation: the official "linear
  bottleneck"; a linear `sep3x3` keeps `linear_sep_inner_act` after its depthwise conv, ReLU in
  the official code for both nets), and the cell input is added: as is when channels and size
  agree, else through a 1x1 conv with stride `pool` -> BN (no activation), and the sum has none.

Network: 3x3 stem conv (`stem_channels`, stride 2 for `stem: imagenet`, 1 for `cifar`) -> BN ->
act; stage s stacks `cells[s]` cells of `filters[s]` channels per node, its first cell pooling by
`pool[s]`; optional 1x1 head conv (`head_channels`) -> BN -> act; global average pool; dropout;
Linear with bias. Convs have no bias. BN defaults are the evaluation's (TF momentum 0.999 =
PyTorch 0.001, eps 1e-3). The stem uses symmetric padding 1 (TF 'SAME' pads only bottom/right at
stride 2; same output size); pools use ceil mode like 'SAME'.

Defaults are ShrinkCNN-A (ImageNet, ReLU, 1000 classes; the TF model has 1001). `init`:
`he_fan_out` is the evaluation's `set_initializer("default")` (conv truncated normal, variance
2 / fan_out; FC N(0, 0.01)), `glorot` the search's TF default (glorot truncated normal). Fan-in
and fan-out follow TF's kernel shapes (a depthwise kernel has fan-in k*k*C, fan-out k*k).

Counting (reference §5): the official MACs and params are conv + dense, BN excluded, the residual
projections included: `count_macs` and `count_params(exclude_norm=True)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from nas_impl.models.blocks import conv_bn
from nas_impl.models.dag import complete_dag, edge_problem, leaves, reachable_edges  # noqa: F401 (complete_dag: re-exported)
from nas_impl.models.registry import SpecModel, register_family
from nas_impl.models.spec import CIFAR_SIZE, IMAGENET_SIZE, require, require_positive, require_positive_list

FAMILY = "shrink-cnn"
Op = Literal["sep3x3", "conv1x1"]
ACTS = {"relu": nn.ReLU, "swish": nn.SiLU, "none": None}

# The released cell (the prototxts' DAG_*/ layers): node 1 = conv_wiring_left, 2 = conv_wiring_right,
# 3 = conv_left (on concat[x, wiring_left]), 4 = conv_right (on concat[x, wiring_right]).
RELEASED_EDGES = [[0, 1], [0, 2], [0, 3], [1, 3], [0, 4], [2, 4]]
RELEASED_OPS = ["sep3x3", "sep3x3", "sep3x3", "conv1x1"]


def cell_graph(edges: Iterable[Sequence[int]], nodes: int) -> tuple[dict[int, list[int]], list[int]]:
    """({built node: its predecessors, in order}, output nodes) after pruning."""
    problem = edge_problem(edges, nodes)
    if problem is not None:
        raise ValueError(problem)
    preds: dict[int, list[int]] = {}
    for i, j in reachable_edges(edges):
        preds.setdefault(j, []).append(i)
    return dict(sorted(preds.items())), leaves(edges)


@dataclass
class ShrinkCNNSpec:
    """Keys of `shrink-cnn`; the defaults build ShrinkCNN-A with 1000 classes."""

    num_classes: int = 1000
    in_channels: int = 3
    stem: Literal["imagenet", "cifar"] = "imagenet"
    stem_channels: int = 44
    nodes: int = 5
    edges: list[list[int]] = field(default_factory=lambda: [list(e) for e in RELEASED_EDGES])
    ops: list[Op] = field(default_factory=lambda: list(RELEASED_OPS))
    activation: Literal["relu", "swish"] = "relu"
    cells: list[int] = field(default_factory=lambda: [1, 3, 4, 6, 4])
    filters: list[int] = field(default_factory=lambda: [12, 24, 44, 88, 180])
    pool: list[int] = field(default_factory=lambda: [1, 2, 2, 2, 2])
    residual: bool = True
    linear_sep_inner_act: Literal["relu", "swish", "none"] = "relu"
    head_channels: int | None = 1280
    dropout: float = 0.0
    bn_momentum: float = 0.001
    bn_eps: float = 0.001
    init: Literal["he_fan_out", "glorot"] = "he_fan_out"

    @property
    def natural_input(self) -> tuple[int, int, int]:
        size = CIFAR_SIZE if self.stem == "cifar" else IMAGENET_SIZE
        return (self.in_channels, size, size)

    def check(self) -> None:
        require_positive(num_classes=self.num_classes, in_channels=self.in_channels,
                         stem_channels=self.stem_channels, nodes=self.nodes)
        for k, edge in enumerate(self.edges):
            require(len(edge) == 2 and 0 <= edge[0] < edge[1] < self.nodes, f"key 'edges' entry {k} = {edge}",
                    f"expected a pair [i, j] of nodes with 0 <= i < j < nodes = {self.nodes}")
        require(len({tuple(e) for e in self.edges}) == len(self.edges), "key 'edges' repeats an edge",
                "list each edge once")
        require(len(self.ops) == self.nodes - 1, f"key 'ops' has {len(self.ops)} entries",
                f"give one op per node after node 0: nodes - 1 = {self.nodes - 1}")
        lengths = f"{len(self.cells)}, {len(self.filters)}, {len(self.pool)}"
        require(len(self.cells) >= 1 and len(self.cells) == len(self.filters) == len(self.pool),
                f"keys 'cells', 'filters', 'pool' have {lengths} entries",
                "give one entry per stage in each, at least one stage")
        for key in ("cells", "filters", "pool"):
            require_positive_list(key, getattr(self, key))
        if self.head_channels is not None:
            require_positive(head_channels=self.head_channels)
        require(0 <= self.dropout < 1, f"key 'dropout' = {self.dropout}", "expected 0 <= dropout < 1")
        require(0 <= self.bn_momentum <= 1, f"key 'bn_momentum' = {self.bn_momentum}",
                "expected PyTorch's momentum in [0, 1] (= 1 - TF's decay; the official 0.999 is 0.001)")
        require(self.bn_eps > 0, f"key 'bn_eps' = {self.bn_eps}", "expected a positive number")


def search_network_spec(edges: Iterable[Sequence[int]], ops: Sequence[str], activation: str = "relu",
                        num_classes: int = 10, in_channels: int = 3, stem: str = "cifar") -> dict[str, Any]:
    """The network the CNN search trains for one candidate mask (reference §3.1; metagraph.py
    `auto_shrink` -> `add_to_proto` with its default `use_residual=True`, contrib.py `Cifar10_*`):
    3x3 stem of 32 channels at stride 1, 3 stages of one cell with 16, 32, 64 filters per node
    (scale 1, 2, 4) and max-pool 1, 2, 2, no head conv, and the TF backend's BN defaults
    (momentum 0.9 = PyTorch 0.1, eps 1e-5) and glorot init. `ops` has one entry per node after
    node 0, so nodes = len(ops) + 1."""
    return {"family": FAMILY, "num_classes": num_classes, "in_channels": in_channels, "stem": stem,
            "stem_channels": 32, "nodes": len(ops) + 1, "edges": [[int(i), int(j)] for i, j in edges],
            "ops": list(ops), "activation": activation, "cells": [1, 1, 1], "filters": [16, 32, 64],
            "pool": [1, 2, 2], "residual": True, "linear_sep_inner_act": "relu", "head_channels": None,
            "dropout": 0.0, "bn_momentum": 0.1, "bn_eps": 1e-5, "init": "glorot"}


def node_op(op: str, cin: int, cout: int, act: str, inner_act: str) -> nn.Sequential:
    """One node: `act` ends it, `inner_act` sits between a separable conv's two convs."""
    if op == "conv1x1":
        return conv_bn(cin, cout, 1, act=ACTS[act])
    depthwise = conv_bn(cin, cin, 3, groups=cin, act=ACTS[inner_act])
    return nn.Sequential(depthwise, conv_bn(cin, cout, 1, act=ACTS[act]))


class ShrinkCell(nn.Module):
    """One cell (module docstring); `out_channels` is the width of its output."""

    def __init__(self, cin: int, filters: int, pool: int, edges: Iterable[Sequence[int]], nodes: int,
                 ops: Sequence[str], activation: str = "relu", residual: bool = True,
                 linear_sep_inner_act: str = "relu") -> None:
        super().__init__()
        self.preds, self.outputs = cell_graph(edges, nodes)
        self.pool = nn.MaxPool2d(pool, pool, ceil_mode=True) if pool > 1 else nn.Identity()
        width = {0: cin, **{j: filters for j in self.preds}}
        self.ops = nn.ModuleDict()
        for j, ins in self.preds.items():
            linear = residual and j in self.outputs
            self.ops[str(j)] = node_op(ops[j - 1], sum(width[i] for i in ins), filters,
                                       "none" if linear else activation,
                                       linear_sep_inner_act if linear else activation)
        self.out_channels = sum(width[n] for n in self.outputs)
        self.residual = residual
        self.shortcut: nn.Module | None = None
        if residual and (pool > 1 or cin != self.out_channels):
            self.shortcut = conv_bn(cin, self.out_channels, 1, stride=pool, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = {0: self.pool(x)}
        for j, ins in self.preds.items():
            x_j = torch.cat([states[i] for i in ins], 1) if len(ins) > 1 else states[ins[0]]
            states[j] = self.ops[str(j)](x_j)
        out = torch.cat([states[n] for n in self.outputs], 1) if len(self.outputs) > 1 else states[self.outputs[0]]
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return out


def _trunc_normal_(w: torch.Tensor, std: float) -> None:
    """TF1's truncated normal of standard deviation `std` (cut at 2 sigma of the untruncated one)."""
    s = std / 0.87962566103423978
    nn.init.trunc_normal_(w, 0.0, s, -2 * s, 2 * s)


def official_init(module: nn.Module, kind: str) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            area = m.kernel_size[0] * m.kernel_size[1]
            fan_in, fan_out = area * m.in_channels, area * m.out_channels // m.groups
            _trunc_normal_(m.weight, math.sqrt(2 / fan_out if kind == "he_fan_out" else 2 / (fan_in + fan_out)))
        elif isinstance(m, nn.Linear):
            if kind == "he_fan_out":
                nn.init.normal_(m.weight, 0.0, 0.01)
            else:
                _trunc_normal_(m.weight, math.sqrt(2 / (m.in_features + m.out_features)))
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_family(FAMILY)
class ShrinkCNN(SpecModel):
    """`stem` -> `cells` (nn.Sequential of ShrinkCell) -> `head` (None without one) -> `avgpool`
    -> `classifier` (Dropout, Linear)."""

    Spec = ShrinkCNNSpec

    def __init__(self, spec: ShrinkCNNSpec) -> None:
        super().__init__(spec)
        act = ACTS[spec.activation]
        self.stem = conv_bn(spec.in_channels, spec.stem_channels, 3, 2 if spec.stem == "imagenet" else 1, act=act)
        cells, cin = [], spec.stem_channels
        for n, filters, pool in zip(spec.cells, spec.filters, spec.pool):
            for r in range(n):
                cells.append(ShrinkCell(cin, filters, pool if r == 0 else 1, spec.edges, spec.nodes, spec.ops,
                                        spec.activation, spec.residual, spec.linear_sep_inner_act))
                cin = cells[-1].out_channels
        self.cells = nn.Sequential(*cells)
        self.head = None if spec.head_channels is None else conv_bn(cin, spec.head_channels, 1, act=act)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        width = spec.head_channels or cin
        self.classifier = nn.Sequential(nn.Dropout(spec.dropout), nn.Linear(width, spec.num_classes))
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum, m.eps = spec.bn_momentum, spec.bn_eps
        official_init(self, spec.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cells(self.stem(x))
        if self.head is not None:
            x = self.head(x)
        return self.classifier(torch.flatten(self.avgpool(x), 1))
