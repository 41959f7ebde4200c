"""Family `shrink-cnn` (AutoShrink): cell semantics against plain layers, edge pruning, the released
ShrinkCNN-A/B against an arithmetic recount and ../shared/reference/autoshrink.md §2.1, and the
search-time network."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.metrics import count_macs, count_params
from nas_impl.models import build_model, natural_input, normalize_spec
from nas_impl.models.dag import complete_dag, edge_problem, reachable_edges
from nas_impl.models.shrink_cnn import ShrinkCell, search_network_spec

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ROOT / "replications/autoshrink/archs"
SEARCH_OPS = ["sep3x3", "conv1x1"] * 3 + ["sep3x3"]  # nodes 1..7 of the 8-node search cell


# Independent recount -----------------------------------------------------------------------------

def _official_reachable(nodes: int, edges) -> tuple[set[int], set[tuple[int, int]]]:
    """Reachable nodes and edges, as util_concat.convert_mask_to_proto walks its mask matrix."""
    mask = [[0] * nodes for _ in range(nodes)]
    for i, j in edges:
        mask[i][j] = 1
    queue = [0]
    for j in range(1, nodes):
        if any(mask[i][j] and i in queue for i in range(j)):
            queue.append(j)
    return set(queue), {(i, j) for i, j in edges if i in queue}


def recount(spec: dict, size: int) -> tuple[int, int, int]:
    """(MACs, conv + dense params, BN gamma/beta) by the official layer formulas
    (api/network/tflayers/convolutional.py, add.py, dense.py; reference §5): conv
    H_in*W_in*k*k*Cin*Cout/s^2, separable k*k*Cin*H*W + Cin*Cout*H*W, the Add's projection
    H_out*W_out*Cin*Cout, dense in*out (+ bias params)."""
    macs = params = bn = 0
    stride = 2 if spec["stem"] == "imagenet" else 1
    macs += size * size * 9 * spec["in_channels"] * spec["stem_channels"] // (stride * stride)
    params += 9 * spec["in_channels"] * spec["stem_channels"]
    bn += 2 * spec["stem_channels"]
    h, c = -(-size // stride), spec["stem_channels"]
    alive, kept = _official_reachable(spec["nodes"], spec["edges"])
    for cells, f, pool in zip(spec["cells"], spec["filters"], spec["pool"]):
        for r in range(cells):
            p = pool if r == 0 else 1
            ho = -(-h // p)
            width = {0: c}
            for j in sorted(alive - {0}):
                cin = sum(width[i] for i in range(j) if (i, j) in kept)
                if spec["ops"][j - 1] == "sep3x3":
                    macs += 9 * cin * ho * ho + cin * f * ho * ho
                    params += 9 * cin + cin * f
                    bn += 2 * (cin + f)
                else:
                    macs += ho * ho * cin * f
                    params += cin * f
                    bn += 2 * f
                width[j] = f
            cout = sum(width[n] for n in alive if not any(i == n for i, _ in kept))
            if spec["residual"] and (cout != c or p > 1):
                macs += ho * ho * c * cout
                params += c * cout
                bn += 2 * cout
            h, c = ho, cout
    if spec["head_channels"]:
        macs += h * h * c * spec["head_channels"]
        params += c * spec["head_channels"]
        bn += 2 * spec["head_channels"]
        c = spec["head_channels"]
    macs += c * spec["num_classes"]
    params += (c + 1) * spec["num_classes"]
    return macs, params, bn


def _counts(spec: dict, size: int) -> tuple[int, int, int]:
    model = build_model(spec)
    no_bn = count_params(model, exclude_norm=True)
    return count_macs(model, (3, size, size)), no_bn, count_params(model) - no_bn


# The cell ----------------------------------------------------------------------------------------

def _randomise_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _copy_into(source: nn.Module, target: nn.Module) -> None:
    """Same tensors in the same order (conv, BN, ...): copy position by position."""
    src, dst = list(source.state_dict().values()), target.state_dict()
    assert [v.shape for v in src] == [v.shape for v in dst.values()]
    target.load_state_dict(dict(zip(dst, src)))


@pytest.mark.parametrize("op", ["sep3x3", "conv1x1"])
@pytest.mark.parametrize("act", ["relu", "swish"])
@pytest.mark.parametrize("residual", [False, True])
def test_single_edge_cell_equals_plain_layers(op, act, residual):
    torch.manual_seed(0)
    cin, f, pool = 8, 6, 2
    cell = ShrinkCell(cin, f, pool, [[0, 1]], 2, [op], act, residual)
    _randomise_bn(cell)
    act_mod = nn.ReLU() if act == "relu" else nn.SiLU()
    # with a residual, node 1 is the output and linear; a linear sep3x3 keeps ReLU between its convs
    last = [] if residual else [act_mod]
    if op == "sep3x3":
        inner = nn.ReLU() if residual else act_mod
        layers = [nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), inner,
                  nn.Conv2d(cin, f, 1, bias=False), nn.BatchNorm2d(f), *last]
    else:
        layers = [nn.Conv2d(cin, f, 1, bias=False), nn.BatchNorm2d(f), *last]
    plain = nn.Sequential(nn.MaxPool2d(2), *layers)
    shortcut = nn.Sequential(nn.Conv2d(cin, f, 1, 2, bias=False), nn.BatchNorm2d(f))
    _copy_into(cell, nn.ModuleList([plain, shortcut]) if residual else plain)
    x = torch.randn(2, cin, 10, 10)
    with torch.no_grad():
        want = plain.eval()(x) + (shortcut.eval()(x) if residual else 0)
        got = cell.eval()(x)
    assert cell.out_channels == f and got.shape == (2, f, 5, 5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_cell_concatenates_predecessors_and_outputs_in_node_order():
    cell = ShrinkCell(4, 3, 1, [[0, 1], [0, 2], [1, 3], [0, 3]], 4, ["conv1x1"] * 3, residual=False)
    assert cell.preds == {1: [0], 2: [0], 3: [0, 1]} and cell.outputs == [2, 3]
    assert cell.ops["3"][0].in_channels == 4 + 3 and cell.out_channels == 6
    empty = ShrinkCell(4, 3, 2, [], 3, ["conv1x1"] * 2)  # no edge: the output is node 0
    assert empty.outputs == [0] and len(empty.ops) == 0 and empty.out_channels == 4
    assert empty(torch.randn(1, 4, 6, 6)).shape == (1, 4, 3, 3)


# Pruning -----------------------------------------------------------------------------------------

def test_prune_unreachable_hand_examples():
    assert reachable_edges([[0, 1], [1, 2], [2, 3]]) == [[0, 1], [1, 2], [2, 3]]
    # node 1 has no predecessor: its edges go, and node 3, fed only by node 1, goes with them
    assert reachable_edges([[0, 2], [1, 2], [1, 3]]) == [[0, 2]]
    assert reachable_edges([[1, 2], [2, 3]]) == []
    assert reachable_edges([(2, 3), (0, 2)]) == [[0, 2], [2, 3]]  # any order, sorted out
    assert reachable_edges([]) == []
    assert "must go forward" in edge_problem([[2, 1]], 3)
    with pytest.raises(ValueError):
        ShrinkCell(4, 3, 1, [[2, 1]], 3, ["conv1x1"] * 2)


def test_prune_unreachable_matches_the_official_walk_on_random_masks():
    rng = random.Random(0)
    for _ in range(300):
        edges = [e for e in complete_dag(8) if rng.random() < 0.4]
        _, kept = _official_reachable(8, edges)
        assert reachable_edges(edges) == sorted([i, j] for i, j in kept)


def test_unreachable_node_has_no_parameters():
    base = search_network_spec([[0, 1], [1, 3]], ["conv1x1", "sep3x3", "conv1x1"])
    with_dead = dict(base, edges=[[0, 1], [1, 3], [2, 3]])  # node 2 has no path from node 0
    model = build_model(with_dead)
    assert all(sorted(cell.ops) == ["1", "3"] for cell in model.cells)
    assert not any(".ops.2." in name for name, _ in model.named_parameters())
    assert count_params(model) == count_params(build_model(base))
    assert count_macs(model) == count_macs(build_model(base))


# Removing edges ----------------------------------------------------------------------------------

def test_removing_an_edge_lowers_macs_when_the_outputs_stay():
    full = search_network_spec(complete_dag(8), SEARCH_OPS)
    macs, params = count_macs(build_model(full)), count_params(build_model(full))
    for edge in complete_dag(8):
        rest = [e for e in complete_dag(8) if e != edge]
        if any(i == edge[0] for i, _ in rest):  # its source keeps a successor: the outputs stay node 7
            smaller = build_model(dict(full, edges=rest))
            assert count_macs(smaller) < macs and count_params(smaller) <= params, edge


def test_removing_a_last_out_edge_adds_an_output_and_can_raise_macs():
    """Node 6's only successor is 7: without 6 -> 7, node 6 becomes a cell output, so the cells
    widen from 16/32/64 to 32/64/128 channels and MACs and params go up."""
    full = search_network_spec(complete_dag(8), SEARCH_OPS)
    cut = dict(full, edges=[e for e in complete_dag(8) if e != [6, 7]])
    a, b = build_model(full), build_model(cut)
    assert [c.out_channels for c in a.cells] == [16, 32, 64] and [c.out_channels for c in b.cells] == [32, 64, 128]
    assert count_macs(b) > count_macs(a) and count_params(b) > count_params(a)
    assert count_macs(b) == recount(cut, 32)[0]


# The released nets ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def released():
    return {x: yaml.safe_load((ARCHS / f"ShrinkCNN-{x}.yaml").read_text()) for x in "AB"}


def test_released_archs_build_round_trip_and_differ_only_in_activation(released):
    assert {k for k in released["A"] if released["A"][k] != released["B"][k]} == {"activation"}
    assert (released["A"]["activation"], released["B"]["activation"]) == ("relu", "swish")
    for x, spec in released.items():
        assert spec == normalize_spec(spec)
        model = build_model(ARCHS / f"ShrinkCNN-{x}.yaml")
        assert model.to_spec() == spec and build_model(model.to_spec()).to_spec() == model.to_spec()
        assert natural_input(spec) == (3, 224, 224)
        acts = {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.SiLU))}
        # B keeps ReLU only between the two convs of its linear sep3x3 nodes
        assert acts == ({nn.ReLU} if x == "A" else {nn.ReLU, nn.SiLU})
        assert all(m.momentum == 0.001 and m.eps == 0.001 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    a, b = build_model(released["A"]).state_dict(), build_model(released["B"]).state_dict()
    assert [(k, v.shape) for k, v in a.items()] == [(k, v.shape) for k, v in b.items()]


def test_released_widths_follow_the_prototxt(released):
    model = build_model(released["A"])
    assert model.stem[0].out_channels == 44 and model.head[0].out_channels == 1280
    assert [c.out_channels for c in model.cells] == [24] + [48] * 3 + [88] * 4 + [176] * 6 + [360] * 4
    first = model.cells[0]
    assert first.preds == {1: [0], 2: [0], 3: [0, 1], 4: [0, 2]} and first.outputs == [3, 4]
    # projections where channels or size change: every stage's first cell (cell 1: 44 -> 24 channels)
    stage_firsts = [r == 0 for n in (1, 3, 4, 6, 4) for r in range(n)]
    assert [c.shortcut is not None for c in model.cells] == stage_firsts


@pytest.mark.parametrize("classes", [1001, 1000])
def test_released_counts_match_the_recount_and_the_reference(released, classes):
    spec = dict(released["A"], num_classes=classes)
    macs, params, bn = _counts(spec, 224)
    assert (macs, params, bn) == recount(spec, 224)
    if classes == 1001:  # the TF model; recounted from the prototxt layer list with the official formulas
        assert (macs, params, bn) == (383_677_672, 3_600_981, 35_320)
    assert round(params / 1e6, 2) == 3.60 and round(bn / 1e6, 3) == 0.035  # reference §2.1 [derived]
    assert round(macs / 1e6, 1) == 383.7


# The search network ------------------------------------------------------------------------------

def test_search_network_of_the_complete_dag_builds_and_runs():
    spec = search_network_spec(complete_dag(8), SEARCH_OPS)
    model = build_model(spec)
    assert model.to_spec() == normalize_spec(spec) and natural_input(spec) == (3, 32, 32)
    assert len(complete_dag(8)) == 28 and model.head is None and model.stem[0].stride == (1, 1)
    assert [c.out_channels for c in model.cells] == [16, 32, 64]
    assert all(m.momentum == 0.1 and m.eps == 1e-5 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.train()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    macs, params, bn = _counts(spec, 32)
    assert (macs, params, bn) == recount(spec, 32)


def test_bad_specs_name_the_key_and_the_fix():
    good = search_network_spec(complete_dag(3), ["conv1x1", "sep3x3"])
    with pytest.raises(SpecError, match=r"key 'edges' entry 0 = \[1, 1\].*0 <= i < j < nodes = 3"):
        build_model(dict(good, edges=[[1, 1]]))
    with pytest.raises(SpecError, match="key 'edges' repeats"):
        build_model(dict(good, edges=[[0, 1], [0, 1]]))
    with pytest.raises(SpecError, match="key 'ops' has 1 entries.*nodes - 1 = 2"):
        build_model(dict(good, ops=["conv1x1"]))
    with pytest.raises(SpecError, match="key 'ops' entry 0 = 'sep5x5'"):
        build_model(dict(good, ops=["sep5x5", "conv1x1"]))
    with pytest.raises(SpecError, match="'cells', 'filters', 'pool' have 3, 2, 3"):
        build_model(dict(good, filters=[16, 32]))
