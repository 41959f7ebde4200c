"""ProxylessNAS's super-network over an `mbconv-chain` backbone, and the net it derives.

The backbone spec fixes the first conv, each block's output width and stride, and the feature
mix (the official `SuperProxylessNASNets(width_stages, n_cell_stages, stride_stages)`; here one
block string per block, so that any released layout's widths can be searched). The first
`fixed_blocks` blocks are built as written (the official fixed 3x3 MBConv1 block), and with
`search_blocks='residual'` (not official: a smaller space whose sampled-path warm-up learns in a CPU
budget) so is every block without an identity residual; every other
block becomes a `MixedEdge` over kernel x expand MBConvs at the block's width and stride,
ordered as the official candidate list (kernel-major: 3x3_MBConv3, 3x3_MBConv6, 5x5_MBConv3,
...), plus Zero last on blocks with an identity residual. The residual is added outside the
edge, and a block whose Zero is active returns its input without calling the edge (the official
`MobileInvertedResidualBlock.forward`).

Candidates are the family's own blocks (`mbconv_block`), so the derived spec (argmax per edge,
Zero -> `zero`) builds a network whose modules are the chosen candidates: `derived_state_dict`
maps the super-network's weights onto it, and with every edge forced to a choice the two
compute the same function. The search-time classifier has no dropout (the official super-net's
`dropout_rate` 0); the derived spec keeps the backbone's `dropout` for retraining.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from nas_impl.errors import NasReproError
from nas_impl.methods.proxylessnas.mixed_edge import MixedEdge, mixed_edges
from nas_impl.metrics.latency_lut import feature_mix_key, first_conv_key, logits_key, mbconv_key
from nas_impl.models.blocks import conv_bn
from nas_impl.models.mbconv_chain import (FAMILY, BlockChoice, BlockPosition, MBConvChainSpec, block_positions,
                                          format_block, head_shapes, mbconv_block, proxyless_init, set_bn)
from nas_impl.models.registry import normalize_spec, parse_spec


def candidate_choices(position: BlockPosition, written: BlockChoice, kernels: tuple[int, ...],
                      expands: tuple[int, ...], zero: bool) -> list[BlockChoice | None]:
    """The candidates of a searchable block, in the official order; None = Zero (last, residual blocks
    only). Each keeps the width and the stride the backbone writes (`written`), so that the derived
    spec reads as the backbone does (a `stem: cifar` chain runs its first stride-2 block at stride 1)."""
    ops: list[BlockChoice | None] = [BlockChoice(e, k, written.out, written.stride)
                                     for k, e in itertools.product(kernels, expands)]
    if zero and position.residual:
        ops.append(None)
    return ops


class CostItem(NamedTuple):
    key: str  # the official LUT key of the block (nas_impl.metrics.latency_lut)
    make: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # batch first


def _block_item(pos: BlockPosition, op: BlockChoice, batch: int) -> CostItem:
    return CostItem(mbconv_key(pos.in_size, pos.cin, pos.out_size, pos.cout, op.expand, op.kernel, pos.stride,
                               pos.residual),
                    lambda: mbconv_block(pos.cin, pos.cout, op.kernel, op.expand, pos.stride),
                    (batch, pos.cin, pos.in_size, pos.in_size))


class SearchBlock(nn.Module):
    """A mixed edge with the block's identity residual outside it."""

    def __init__(self, edge: MixedEdge, residual: bool) -> None:
        super().__init__()
        self.edge, self.residual = edge, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.edge.is_zero_active:
            return x
        out = self.edge(x)
        return x + out if self.residual else out


def _candidate(position: BlockPosition, choice: BlockChoice | None) -> nn.Module | None:
    if choice is None:
        return None
    block = mbconv_block(position.cin, position.cout, choice.kernel, choice.expand, position.stride)
    block.use_res_connect = False  # the SearchBlock adds it
    return block


class ProxylessSuperNet(nn.Module):
    """first_conv -> blocks (fixed modules, then SearchBlocks) -> feature_mix -> pool -> classifier."""

    def __init__(self, base_spec: dict[str, Any], *, kernels: tuple[int, ...] = (3, 5, 7),
                 expands: tuple[int, ...] = (3, 6), zero: bool = True, fixed_blocks: int = 1,
                 search_blocks: str = "all", arch_init_std: float = 1e-3, image_size: int | None = None) -> None:
        super().__init__()
        spec = parse_spec(base_spec)
        if not isinstance(spec, MBConvChainSpec):
            raise NasReproError(f"ProxylessNAS searches over an '{FAMILY}' backbone; the base spec is of family "
                                f"'{normalize_spec(base_spec)['family']}'")
        choices = spec.choices()
        if fixed_blocks > len(choices):
            raise NasReproError(f"search recipe key 'fixed_blocks' = {fixed_blocks}: the backbone has only "
                                f"{len(choices)} blocks")
        self.spec = spec
        self.image_size = image_size or spec.natural_input[1]
        self.positions = block_positions(spec, self.image_size)
        self.heads = head_shapes(spec, self.image_size)
        # The blocks built as written (the rest are searched).
        self.fixed = {pos.index for pos in self.positions
                      if pos.index < fixed_blocks or (search_blocks == "residual" and not pos.residual)}
        for i in range(len(choices)):
            if i not in self.fixed and choices[i] is None:
                raise NasReproError(f"backbone block {i} is 'zero': write the block whose width and stride the "
                                    "search keeps (e.g. 'e6_k3_c32_s1'); Zero is a candidate of residual blocks")
        self.first_conv = conv_bn(spec.in_channels, spec.first_conv, 3, spec.first_conv_stride(), act=nn.ReLU6)
        blocks: list[nn.Module] = []
        self.edge_choices: list[list[BlockChoice | None]] = []
        for pos, choice in zip(self.positions, choices):
            if pos.index in self.fixed:
                blocks.append(nn.Identity() if choice is None
                              else mbconv_block(pos.cin, pos.cout, choice.kernel, choice.expand, pos.stride))
                continue
            ops = candidate_choices(pos, choice, kernels, expands, zero)
            self.edge_choices.append(ops)
            edge = MixedEdge([_candidate(pos, op) for op in ops], init_std=arch_init_std)
            blocks.append(SearchBlock(edge, pos.residual))
        self.blocks = nn.Sequential(*blocks)
        mix = self.heads.feature_mix
        self.feature_mix = None if mix is None else conv_bn(mix.cin, mix.cout, 1, act=nn.ReLU6)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.heads.classifier_in, spec.num_classes)
        set_bn(self)
        proxyless_init(self)  # the official init_model('he_fout') over the whole super-net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.first_conv(x))
        if self.feature_mix is not None:
            x = self.feature_mix(x)
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    # -- parameters and edges ---------------------------------------------------------------------
    def edges(self) -> list[MixedEdge]:
        return list(mixed_edges(self))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [edge.alpha for edge in self.edges()]

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return (p for p in self.parameters() if id(p) not in arch)

    def set_mode(self, mode: str | None) -> None:
        for edge in self.edges():
            edge.mode = mode

    def binarize(self, generator: torch.Generator | None = None) -> list[int]:
        """Sample every edge's path(s) for the next forward (the official `reset_binary_gates`)."""
        return [edge.binarize(generator) for edge in self.edges()]

    def set_chosen(self, indices: list[int]) -> None:
        for edge, index in zip(self.edges(), indices, strict=True):
            edge.set_chosen(index)

    def set_arch_param_grad(self) -> None:
        for edge in self.edges():
            edge.set_arch_param_grad()

    def rescale_updated_arch_param(self) -> None:
        for edge in self.edges():
            edge.rescale_updated_arch_param()

    def log_prob(self) -> torch.Tensor:
        """Sum over edges of log p(sampled op): the REINFORCE score of the current sample."""
        return torch.stack([edge.log_prob for edge in self.edges()]).sum()

    def entropy(self) -> float:
        """Mean entropy of the edges' op distributions (nats)."""
        edges = self.edges()
        return float(sum(edge.entropy().item() for edge in edges) / max(len(edges), 1))

    # -- derivation --------------------------------------------------------------------------------
    def base_spec(self) -> dict[str, Any]:
        """The backbone as written (the search's base network)."""
        return normalize_spec({"family": FAMILY, **asdict(self.spec)})

    def argmax_indices(self) -> list[int]:
        return [edge.chosen_index() for edge in self.edges()]

    def derive_spec(self, indices: list[int] | None = None) -> dict[str, Any]:
        """The `mbconv-chain` spec of the chosen ops (argmax p by default; Zero -> 'zero')."""
        indices = self.argmax_indices() if indices is None else indices
        chosen = iter(ops[i] for ops, i in zip(self.edge_choices, indices, strict=True))
        blocks = [text if pos.index in self.fixed else format_block(next(chosen))
                  for pos, text in zip(self.positions, self.spec.blocks)]
        return normalize_spec({"family": FAMILY, **asdict(self.spec), "blocks": blocks})

    def derived_state_dict(self, indices: list[int] | None = None) -> dict[str, torch.Tensor]:
        """The super-network's weights under the derived network's parameter names."""
        indices = self.argmax_indices() if indices is None else indices
        out: dict[str, torch.Tensor] = {}

        def put(prefix: str, module: nn.Module) -> None:
            out.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})

        put("first_conv", self.first_conv)
        edge_index = iter(indices)
        for i, block in enumerate(self.blocks):
            if isinstance(block, SearchBlock):
                index = next(edge_index)
                if not block.edge.is_zero(index):
                    put(f"blocks.{i}", block.edge.candidates[index])
            else:
                put(f"blocks.{i}", block)
        if self.feature_mix is not None:
            put("feature_mix", self.feature_mix)
        put("classifier.1", self.classifier)
        return out

    # -- cost keys (latency LUT, MACs) --------------------------------------------------------------
    # One CostItem per block of the space: its LUT key, the module that runs there (a fixed block or
    # candidate with its residual, the head) and its input shape. Keys, LUT measurement and MACs all
    # read these, so they cannot disagree.
    def _fixed_items(self, batch: int = 1) -> list[CostItem]:
        """What every sampled net has: first conv, fixed blocks, feature mix, logits."""
        first, heads = self.heads.first_conv, self.heads
        items = [CostItem(first_conv_key(first.in_size, first.cin, first.out_size, first.cout),
                          lambda: conv_bn(first.cin, first.cout, 3, first.stride, act=nn.ReLU6),
                          (batch, first.cin, first.in_size, first.in_size))]
        items += [_block_item(pos, choice, batch) for pos, choice in zip(self.positions, self.spec.choices())
                  if pos.index in self.fixed and choice is not None]
        width, size = self.positions[-1].cout, heads.final_size
        if heads.feature_mix is not None:
            mix = heads.feature_mix
            items.append(CostItem(feature_mix_key(size, mix.cin, mix.cout),
                                  lambda: conv_bn(mix.cin, mix.cout, 1, act=nn.ReLU6), (batch, mix.cin, size, size)))
            width = mix.cout
        classes = heads.num_classes
        items.append(CostItem(logits_key(size, width, classes),
                              lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes)),
                              (batch, width, size, size)))
        return items

    def _edge_items(self, batch: int = 1) -> list[list[CostItem | None]]:
        """Per edge, each candidate's item in candidate order (None for Zero)."""
        return [[None if op is None else _block_item(pos, op, batch) for op in ops]
                for pos, ops in zip([p for p in self.positions if p.index not in self.fixed], self.edge_choices,
                                    strict=True)]

    def fixed_cost_keys(self) -> list[str]:
        return [item.key for item in self._fixed_items()]

    def edge_cost_keys(self) -> list[list[str | None]]:
        return [[None if item is None else item.key for item in items] for items in self._edge_items()]

    def cost_items(self, batch: int = 1) -> list[CostItem]:
        """Every block of the space, fixed parts first: what a LUT measures (repeated keys included)."""
        return self._fixed_items(batch) + [item for items in self._edge_items(batch) for item in items if item]

    def chosen_cost_keys(self, indices: list[int] | None = None) -> list[str]:
        """The keys of one sampled (or the derived) net: fixed parts and the chosen ops."""
        indices = self.argmax_indices() if indices is None else indices
        chosen = [keys[i] for keys, i in zip(self.edge_cost_keys(), indices, strict=True)]
        return self.fixed_cost_keys() + [k for k in chosen if k is not None]
