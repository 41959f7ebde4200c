"""ProxylessNAS's super-network, its steps against slow independent computations, the whole
search (files, resume, the latency stage) and the `nasrepro search` verb."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from nas_impl.cli import main
from nas_impl.data import TensorLoader
from nas_impl.errors import NasReproError, SpecError
from nas_impl.methods import get_method
from nas_impl.methods.interface import StageResult
from nas_impl.methods.proxylessnas.loop import (LATENCY_TABLE, ProxylessSearch, build_latency_table, search_costs,
                                                super_net)
from nas_impl.methods.proxylessnas.mixed_edge import MovingAverageBaseline
from nas_impl.methods.proxylessnas.recipe import search_recipe_from_dict
from nas_impl.methods.proxylessnas.search import (Costs, CostTable, HardwareLoss, arch_schedule, gradient_arch_step,
                                                  reinforce_schedule, reinforce_step, warmup_recipe)
from nas_impl.methods.proxylessnas.search_net import ProxylessSuperNet, SearchBlock
from nas_impl.metrics import count_macs
from nas_impl.metrics.latency_lut import LatencyEntry, LatencyTable
from nas_impl.models import build_model, load_spec
from nas_impl.run_data import RunData
from nas_impl.training.schedule import lr_at

BACKBONE = {"family": "mbconv-chain", "num_classes": 4, "in_channels": 3, "stem": "cifar", "first_conv": 8,
            "blocks": ["e1_k3_c8_s1", "e6_k3_c8_s1", "e6_k3_c16_s2", "e6_k3_c16_s1"], "feature_mix": 32, "dropout": 0.2}
INPUT = (3, 12, 12)
RECIPE = {"epochs": 2, "batch_size": 8, "lr": 0.025, "nesterov": True, "weight_decay": 4e-5, "label_smoothing": 0.1,
          "augment": {}, "supernet_warmup_epochs": 1, "arch_every": 2, "arch_skip_epochs": 0, "valid_size": 16,
          "hardware": "flops", "kernels": [3, 5], "expands": [3, 6]}


def _net(seed: int = 0, **options) -> ProxylessSuperNet:
    torch.manual_seed(seed)
    options = {"kernels": (3, 5), "expands": (3, 6), **options}
    return ProxylessSuperNet(BACKBONE, image_size=INPUT[1], **options)


def _x(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *INPUT, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the super-network

def test_space_official_candidate_order_and_zero_on_residual_blocks_only():
    net = _net(kernels=(3, 5, 7), expands=(3, 6))
    # block 1: 8 -> 8 stride 1 (residual, Zero); block 2: 8 -> 16 written s2, run at s1 by the cifar stem
    # (no residual: widths differ); block 3: 16 -> 16 (residual)
    assert [len(ops) for ops in net.edge_choices] == [7, 6, 7]
    first = net.edge_choices[0]
    assert [(op.kernel, op.expand) for op in first[:-1]] == [(3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6)]
    assert first[-1] is None
    assert net.edge_choices[1][0].stride == 2  # as written: the derived spec reads as the backbone


@pytest.mark.parametrize("indices", [[0, 0, 0], [3, 2, 1], [4, 1, 4]])  # 4 = Zero on blocks 1 and 3
def test_forced_choices_compute_the_derived_network(indices):
    net = _net()
    net.set_chosen(indices)
    spec = net.derive_spec(indices)
    derived = build_model({**spec, "dropout": 0.0})  # the search's classifier has none (train mode compares too)
    derived.load_state_dict(net.derived_state_dict(indices))
    for mode in ("train", "eval"):
        getattr(net, mode)()
        getattr(derived, mode)()
        x = _x()
        torch.testing.assert_close(net(x), derived(x), rtol=0, atol=0)
    assert spec["dropout"] == 0.2 and spec["blocks"][0] == "e1_k3_c8_s1"  # fixed block and dropout as the backbone
    skipped = [i for i, index in enumerate(indices) if index == 4]
    assert [spec["blocks"][1 + i] for i in skipped] == ["zero"] * len(skipped)


@pytest.mark.parametrize("indices", [[0, 0], [3, 4], [2, 1]])  # 4 = Zero
def test_searching_residual_blocks_only_keeps_the_others_as_written(indices):
    net = _net(search_blocks="residual")
    assert [len(ops) for ops in net.edge_choices] == [5, 5]  # blocks 1 and 3; block 2 (8 -> 16) is kept as written
    net.set_chosen(indices)
    spec = net.derive_spec(indices)
    assert spec["blocks"][2] == "e6_k3_c16_s2"
    derived = build_model({**spec, "dropout": 0.0})
    derived.load_state_dict(net.derived_state_dict(indices))
    net.eval(), derived.eval()
    x = _x()
    torch.testing.assert_close(net(x), derived(x), rtol=0, atol=0)
    costs = search_costs(net, search_recipe_from_dict({**RECIPE, "search_blocks": "residual"}).proxyless, None)
    assert costs.of(net, indices) * 1e6 == pytest.approx(count_macs(build_model(spec), INPUT), rel=1e-9)


def test_zero_active_returns_the_input_without_calling_the_edge():
    net = _net()
    block = net.blocks[1]
    assert isinstance(block, SearchBlock) and block.residual
    block.edge.set_chosen(4)
    x = torch.randn(2, 8, 12, 12)
    assert torch.equal(block(x), x)


def test_a_zero_backbone_block_or_another_family_is_refused():
    with pytest.raises(NasReproError, match="backbone block 1 is 'zero'"):
        ProxylessSuperNet({**BACKBONE, "blocks": ["e1_k3_c8_s1", "zero"]})
    with pytest.raises(NasReproError, match="'mbconv-chain' backbone"):
        ProxylessSuperNet({"family": "mobilenet-v2"})


def _slow_arch_grad(net: ProxylessSuperNet, indices: list[int], x, y) -> list[torch.Tensor]:
    """dCE/dalpha by the paper's rule computed the slow way: every block's output as
    x + sum_j g_j o_j(x) with all candidates live and one-hot leaf gates g, then
    dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i); an edge whose Zero is active is skipped."""
    gates = []
    h = net.first_conv(x)
    edge_i = 0
    for block in net.blocks:
        if not isinstance(block, SearchBlock):
            h = block(h)
            continue
        edge, active = block.edge, indices[edge_i]
        g = torch.zeros(edge.n_choices)
        g[active] = 1.0
        g.requires_grad_(True)
        gates.append(g)
        if edge.is_zero(active):
            edge_i += 1
            continue  # the block returns its input
        mix = sum(g[j] * (torch.zeros_like(h) if edge.is_zero(j) else op(h)) for j, op in enumerate(edge.candidates))
        h = h + mix if block.residual else mix
        edge_i += 1
    h = net.feature_mix(h)
    loss = F.cross_entropy(net.classifier(torch.flatten(net.avgpool(h), 1)), y)
    grads = torch.autograd.grad(loss, gates, allow_unused=True)
    out = []
    for edge, g, active in zip(net.edges(), grads, indices):
        if edge.is_zero(active) or g is None:
            out.append(None)
            continue
        p = edge.probs.detach()
        out.append(torch.stack([sum(g[j] * p[j] * (float(i == j) - p[i]) for j in range(len(p))) for i in range(len(p))]))
    return out


@pytest.mark.parametrize("mode", ["full_v2", "full"])
def test_gradient_step_arch_gradient_equals_the_slow_binaryconnect_rule(mode, monkeypatch):
    net = _net()
    for edge in net.edges():  # distinct probabilities, so that p enters the rule
        edge.alpha.data = torch.linspace(-1.0, 1.0, edge.n_choices)
    indices = [1, 2, 0]
    monkeypatch.setattr(ProxylessSuperNet, "binarize", lambda self, generator=None: self.set_chosen(indices))
    x, y = _x(6), torch.tensor([0, 1, 2, 3, 0, 1])
    # the reference first, on a copy in train mode (BN batch statistics, as the step)
    reference = _net()
    reference.load_state_dict(net.state_dict())
    reference.train()
    expected = _slow_arch_grad(reference, indices, x, y)
    a_opt = torch.optim.SGD(net.arch_parameters(), lr=0.0)  # lr 0: keep alpha, read its grad
    gradient_arch_step(net, a_opt, (x, y), mode)
    for edge, want in zip(net.edges(), expected):
        torch.testing.assert_close(edge.alpha.grad, want, rtol=1e-5, atol=1e-7)
    assert all(edge.mode is None for edge in net.edges())  # back to weight mode after the step


def test_expected_cost_term_adds_its_softmax_gradient():
    """With the add form, alpha.grad = BinaryConnect CE part + lam * dE/dalpha, E = sum_j p_j c_j."""
    net = _net()
    costs = search_costs(net, search_recipe_from_dict(RECIPE).proxyless, None)
    x, y = _x(), torch.tensor([0, 1, 2, 3])
    plain = _net()
    plain.load_state_dict(net.state_dict())
    torch.manual_seed(5)  # the same sampled paths in both steps
    gradient_arch_step(plain, torch.optim.SGD(plain.arch_parameters(), lr=0.0), (x, y), "full_v2")
    torch.manual_seed(5)
    gradient_arch_step(net, torch.optim.SGD(net.arch_parameters(), lr=0.0), (x, y), "full_v2", costs,
                       HardwareLoss("add", 1.0, {"lam": 0.5}))
    for edge, other, keys in zip(net.edges(), plain.edges(), costs.edges):
        c = torch.tensor([0.0 if k is None else costs.table.lookup(k) for k in keys])
        p = edge.probs.detach()
        softmax_part = p * (c - (p * c).sum())
        if other.alpha.grad is None:  # Zero active: the CE part is skipped, the cost part is not (official)
            continue
        torch.testing.assert_close(edge.alpha.grad, other.alpha.grad + 0.5 * softmax_part, rtol=1e-5, atol=1e-6)


def test_reinforce_step_equals_the_official_per_sample_aggregation():
    net = _net()
    for edge in net.edges():
        edge.alpha.data = torch.linspace(-0.5, 0.5, edge.n_choices)
    costs = Costs(CostTable({}), [], [], "MMACs")
    costs.of = lambda net, indices: 2.0 + sum(indices)  # a cost that depends on the sample
    x, y = _x(8), torch.arange(8) % 4
    alpha0 = [edge.alpha.detach().clone() for edge in net.edges()]
    # the official way, replayed: same samples (same RNG), per-sample grads of -sum log p, (R - b)-weighted mean
    reference = _net()
    reference.load_state_dict(net.state_dict())
    torch.manual_seed(11)
    rewards, grads = [], []
    for _ in range(3):
        indices = reference.binarize()
        with torch.no_grad():
            acc = (reference(x).argmax(1) == y).float().mean().item()
        rewards.append(acc * (4.0 / costs.of(reference, indices)) ** 0.1)
        score = -sum(torch.log(F.softmax(e.alpha, 0)[i]) for e, i in zip(reference.edges(), indices))
        grads.append(torch.autograd.grad(score, reference.arch_parameters()))
    b = sum(rewards) / 3  # the first update sets the baseline to the batch mean
    want = [sum((r - b) * g[k] for r, g in zip(rewards, grads)) / 3 for k in range(len(alpha0))]
    torch.manual_seed(11)
    out = reinforce_step(net, torch.optim.SGD(net.arch_parameters(), lr=1.0), (x, y), 3, MovingAverageBaseline(),
                         costs, ref=4.0, tradeoff=0.1)
    assert out["baseline"] == pytest.approx(b)
    for edge, a0, g in zip(net.edges(), alpha0, want):
        torch.testing.assert_close(edge.alpha.detach(), a0 - g, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- schedules

def test_update_schedules_as_the_official_configs():
    assert arch_schedule(12, 5, 1) == {4: 1, 9: 1}
    assert arch_schedule(4, 5, 1) == {}
    assert reinforce_schedule(10, 300) == {i: 1 for i in range(10)}  # fewer steps than updates: every step
    schedule = reinforce_schedule(1000, 300)
    assert len(schedule) == 300 and max(schedule) == 999 and min(schedule) == 3  # segments of 4, then 3
    # the warm-up: cosine from lr_max 0.05 to 0 over all its steps (here 1 epoch of 100 steps)
    warm = warmup_recipe(search_recipe_from_dict(RECIPE).weights, 1, 0.05)
    assert lr_at(warm, 0, 100) == pytest.approx(0.05) and lr_at(warm, 50, 100) == pytest.approx(0.025)


# ---------------------------------------------------------------- costs and the latency stage

def test_flops_costs_are_the_candidates_macs_and_the_derived_net_adds_up():
    net = _net()
    costs = search_costs(net, search_recipe_from_dict(RECIPE).proxyless, None)
    indices = [0, 3, 4]
    spec = net.derive_spec(indices)
    assert costs.of(net, indices) * 1e6 == pytest.approx(count_macs(build_model(spec), INPUT), rel=1e-9)
    uniform = float(costs.expected(net, "uniform"))
    each = [sum(0.0 if k is None else costs.table.lookup(k) for k in keys) / len(keys) for keys in costs.edges]
    fixed = sum(costs.table.lookup(k) for k in costs.fixed)
    assert uniform == pytest.approx(fixed + sum(each))


def test_latency_stage_measures_every_key_and_checks_a_given_table(tmp_path):
    recipe = search_recipe_from_dict({**RECIPE, "hardware": "latency", "latency_repeats": 2, "latency_warmup": 0})
    net = _net()
    summary = build_latency_table(net, recipe.proxyless, torch.device("cpu"), tmp_path, threads=1)
    table = LatencyTable.load(tmp_path / LATENCY_TABLE)
    keys = net.fixed_cost_keys() + [k for keys in net.edge_cost_keys() for k in keys if k is not None]
    assert set(keys) == set(table.entries) and summary["entries"] == len(table) and summary["batch"] == 1
    # a user's table lacking one block is refused, naming it
    short = LatencyTable({k: v for k, v in table.entries.items() if k != keys[-1]}, "x", "user")
    short.save(tmp_path / "user.yaml")
    partial = search_recipe_from_dict({**RECIPE, "hardware": "latency", "latency_table": str(tmp_path / "user.yaml")})
    with pytest.raises(NasReproError, match=r"lacks 1 of the .* blocks of this search space, e.g. 'expanded_conv"):
        build_latency_table(net, partial.proxyless, torch.device("cpu"), tmp_path / "u")
    full = LatencyTable({k: LatencyEntry(1.0) for k in keys}, "x", "user")
    full.save(tmp_path / "full.yaml")
    given = search_recipe_from_dict({**RECIPE, "hardware": "latency", "latency_table": str(tmp_path / "full.yaml")})
    (tmp_path / "g").mkdir()
    assert build_latency_table(net, given.proxyless, torch.device("cpu"), tmp_path / "g")["entries"] == len(set(keys))


# ---------------------------------------------------------------- the whole search

def _data(seed: int = 0, n: int = 48) -> RunData:
    gen = torch.Generator().manual_seed(123)
    x = torch.randint(0, 256, (n, *INPUT), dtype=torch.uint8, generator=gen)
    y = torch.arange(n) % 4
    common = dict(mean=(0.5,) * 3, std=(0.25,) * 3, seed=seed, channels_last=True)
    return RunData({"train": TensorLoader(x[:32], y[:32], 8, shuffle=True, drop_last=True, **common),
                    "scored": TensorLoader(x[32:], y[32:], 8, shuffle=True, drop_last=True, **common)},
                   4, INPUT, {"dataset": "synthetic"})


def _search(tmp_path, name="s", seed=0, **changes) -> ProxylessSearch:
    recipe = search_recipe_from_dict({**RECIPE, **changes})
    torch.manual_seed(seed)
    net = super_net(BACKBONE, recipe.proxyless, INPUT[1])
    return ProxylessSearch(net, recipe, _data(seed), out_dir=tmp_path / name, seed=seed)


def test_search_writes_log_and_summary_and_updates_alpha_only_after_warmup(tmp_path):
    search = _search(tmp_path)
    alpha0 = [a.detach().clone() for a in search.net.arch_parameters()]
    result = search.fit()
    rows = search.history
    assert [r["phase"] for r in rows] == ["warmup", "search", "search"]
    assert [r["arch_updates"] for r in rows] == [0, 2, 2]  # 4 weight steps an epoch, one update every 2
    assert any(not torch.equal(a, b.detach()) for a, b in zip(alpha0, search.net.arch_parameters()))
    summary = json.loads((tmp_path / "s" / "search.json").read_text())
    assert summary["method"] == "proxylessnas" and summary["selected"] == "flops"
    spec = load_spec(tmp_path / "s" / "arch.yaml")
    assert spec == result.targets["flops"].arch and summary["targets"]["flops"]["macs"] == count_macs(build_model(spec), INPUT)
    assert summary["base_macs"] == count_macs(build_model(BACKBONE), INPUT)
    assert summary["details"]["cost_unit"] == "MMACs" and summary["details"]["derived_cost"] * 1e6 == pytest.approx(
        summary["targets"]["flops"]["macs"])


def test_warmup_alone_leaves_alpha_untouched(tmp_path):
    search = _search(tmp_path, epochs=1, arch_skip_epochs=1)
    alpha0 = [a.detach().clone() for a in search.net.arch_parameters()]
    search.fit()
    assert all(torch.equal(a, b.detach()) for a, b in zip(alpha0, search.net.arch_parameters()))


@pytest.mark.parametrize("changes", [{}, {"arch_algo": "reinforce", "rl_samples": 2, "rl_updates_per_epoch": 2}])
def test_search_is_seeded_and_resumes_bit_exactly(tmp_path, changes):
    whole = _search(tmp_path, "whole", **changes)
    whole.fit()
    interrupted = _search(tmp_path, "interrupted", **changes)
    stopped = interrupted.fit(stop_after=2)
    assert isinstance(stopped, StageResult) and not (tmp_path / "interrupted" / "arch.yaml").exists()
    resumed = _search(tmp_path, "interrupted", **changes)
    resumed.fit(resume=True)
    for (name, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name
    assert load_spec(tmp_path / "whole" / "arch.yaml") == load_spec(tmp_path / "interrupted" / "arch.yaml")


def test_a_strong_cost_term_moves_the_derived_net_toward_fewer_macs(tmp_path):
    search = _search(tmp_path, epochs=3, arch_every=1, arch_lr=0.05, loss_form="add", loss_lambda=5.0)
    before = float(search.costs.expected(search.net, "uniform"))
    result = search.fit()
    assert result.targets["flops"].macs / 1e6 < before


# ---------------------------------------------------------------- recipe, registry, verb

@pytest.mark.parametrize("change, message", [
    ({"arch_algo": "darts"}, "arch_algo' = 'darts': must be one of gradient, reinforce"),
    ({"grad_mode": "one"}, "grad_mode' = 'one': must be one of full_v2, two, full"),
    ({"kernels": [3, 4]}, "kernels' = \\[3, 4\\]: must be a non-empty list of odd kernel sizes"),
    ({"warmup_epoch": 3}, "warmup_epoch"),
])
def test_bad_search_recipes_name_the_key(change, message):
    with pytest.raises(SpecError, match=message):
        search_recipe_from_dict({**RECIPE, **change}, "r.yaml")


def test_proxylessnas_is_registered_with_a_latency_and_a_search_stage():
    method = get_method("proxylessnas")
    assert method.info.stage_names == ("latency", "search")
    assert method.info.targets(search_recipe_from_dict(RECIPE)) == ("flops",)


def test_search_verb_runs_both_stages_on_a_real_dataset(tmp_path, capsys):
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "epochs": 1, "supernet_warmup_epochs": 0, "batch_size": 16,
                                      "train_subset": 96, "valid_size": 32, "hardware": "latency",
                                      "latency_repeats": 2, "latency_warmup": 0}))
    arch = tmp_path / "backbone.yaml"
    arch.write_text(yaml.safe_dump(BACKBONE))
    out = tmp_path / "run"
    code = main(["search", "--method", "proxylessnas", "--arch", str(arch), "--recipe", str(recipe),
                 "--dataset", "fashion-mnist", "--out", str(out), "--device", "cpu"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    spec = load_spec(out / "arch.yaml")
    assert spec["in_channels"] == 1 and spec["num_classes"] == 10
    assert printed["targets"]["latency"]["macs"] == count_macs(build_model(spec), (1, 28, 28))
    summary = json.loads((out / "search.json").read_text())
    assert summary["record"]["search_split"]["sizes"] == {"weights": 64, "held_out": 32, "scored": 32}
    assert summary["details"]["cost_unit"] == "ms" and math.isfinite(summary["details"]["derived_cost"])
    assert json.loads((out / "latency.json").read_text())["device"]


def test_resume_refuses_a_checkpoint_made_with_another_lookup_table(tmp_path):
    net = _net()
    keys = net.fixed_cost_keys() + [k for keys in net.edge_cost_keys() for k in keys if k is not None]
    out = tmp_path / "s"
    out.mkdir()
    LatencyTable({k: LatencyEntry(2.0) for k in keys}, "cpu", "test").save(out / LATENCY_TABLE)
    _search(tmp_path, hardware="latency").fit(stop_after=1)
    LatencyTable({k: LatencyEntry(3.0) for k in keys}, "cpu", "test").save(out / LATENCY_TABLE)  # re-measured
    with pytest.raises(NasReproError, match="its costs differ"):
        _search(tmp_path, hardware="latency").fit(resume=True)
