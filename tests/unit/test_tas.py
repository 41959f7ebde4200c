"""TAS: search space, CWI, the super-network's sampling, expected vs exact MACs, the FLOP loss,
the derived spec and the search step's bookkeeping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import nas_impl.methods.tas.search_net as search_net
from nas_impl.methods.tas import (
    TASResNet,
    arch_loss,
    argmax_macs,
    band_macs,
    depth_choices,
    derive_spec,
    estimated_macs,
    expected_macs,
    flop_loss,
    search_step,
    tau_at,
    width_choices,
)
from nas_impl.methods.tas.cwi import cwi, scaled_cwi
from nas_impl.metrics import count_macs
from nas_impl.models import build_model

SMALL = (8, 8)


def _net(depth: int = 20, block: str = "basic", seed: int = 0, **kw) -> TASResNet:
    torch.manual_seed(seed)
    return TASResNet(depth, block, image_size=SMALL, **kw)


def _set_one_hot(net: TASResNet, widths: list[int], depths: list[int], big: float = 1e3) -> None:
    """Width index per conv and depth index per stage, as (numerically exact) one-hot softmaxes."""
    with torch.no_grad():
        net.width_logits.zero_()
        net.depth_logits.zero_()
        for conv, k in zip(net.width_convs(), widths):
            net.width_logits[conv.row, k] = big
        for s, j in enumerate(depths):
            net.depth_logits[s, j] = big


def _random_one_hot(net: TASResNet, gen: torch.Generator) -> tuple[list[int], list[int]]:
    widths = [int(torch.randint(len(c.choices), (1,), generator=gen)) for c in net.width_convs()]
    depths = [int(torch.randint(len(net.depth_choices), (1,), generator=gen)) for _ in net.stages]
    _set_one_hot(net, widths, depths)
    return widths, depths


def _expected(net: TASResNet, **kw) -> float:
    return float(expected_macs(net, **kw).detach())


def _exact(spec: dict) -> int:
    return count_macs(build_model(spec), (3, *SMALL))


# ---------------------------------------------------------------- search space

@pytest.mark.parametrize("cmax, expected", [
    (16, [4, 6, 8, 9, 11, 12, 14, 16]),
    (32, [9, 12, 16, 19, 22, 25, 28, 32]),
    (64, [19, 25, 32, 38, 44, 51, 57, 64]),
])
def test_width_choices(cmax, expected):
    assert width_choices(cmax) == expected


@pytest.mark.parametrize("blocks, expected", [
    (1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (4, [1, 3, 4]), (9, [1, 3, 5, 7, 9]),
    (18, [1, 3, 5, 7, 9, 11, 13, 15, 17, 18]),
])
def test_depth_choices(blocks, expected):
    assert depth_choices(blocks) == expected


def test_super_net_layout():
    net = _net(56)
    assert net.width_logits.shape == (1 + 2 * 27, 8)
    assert net.depth_logits.shape == (3, 5)
    assert abs(float(net.width_logits.detach().std()) - 0.01) < 0.005
    n_arch = sum(p.numel() for p in net.arch_parameters())
    n_weight = sum(p.numel() for p in net.weight_parameters())
    assert n_arch + n_weight == sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------- CWI

def test_cwi_shrinks_by_averaging_and_grows_by_repeating():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1).expand(2, 4, 3, 5)
    y = cwi(x, 2)
    assert y.shape == (2, 2, 3, 5)
    assert torch.equal(y[0, :, 1, 2], torch.tensor([1.5, 3.5]))
    z = cwi(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1), 4)
    assert torch.equal(z.flatten(), torch.tensor([1.0, 1.0, 2.0, 2.0]))
    assert cwi(x, 4) is x


def test_cwi_keeps_spatial_values_separate():
    x = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).view(2, 4, 3, 3)
    torch.testing.assert_close(cwi(x, 2), torch.stack([x[:, :2].mean(1), x[:, 2:].mean(1)], 1))


@pytest.mark.parametrize("c, target", [(c, t) for c in (1, 3, 4, 9, 16, 19, 25, 51, 64) for t in (16, 32, 64, 70)
                                        if c <= t])
def test_cwi_growing_equals_adaptive_average_pooling(c, target):
    """The gather path computes exactly what TAS's adaptive_avg_pool3d computes."""
    x = torch.randn(2, c, 3, 4, generator=torch.Generator().manual_seed(c)).contiguous(memory_format=torch.channels_last)
    reference = torch.nn.functional.adaptive_avg_pool3d(x.unsqueeze(1), (target, 3, 4)).squeeze(1)
    assert torch.equal(cwi(x, target), reference)


@pytest.mark.parametrize("c, target", [(9, 16), (16, 16), (44, 64), (20, 16)])
def test_scaled_cwi_equals_scaling_the_resized_map(c, target):
    x = torch.randn(3, c, 4, 4, requires_grad=True)
    w = torch.tensor(0.3, requires_grad=True)
    g = torch.randn(3, target, 4, 4)
    want = w * F.adaptive_avg_pool3d(x.unsqueeze(1), (target, 4, 4)).squeeze(1)
    grads_want = torch.autograd.grad((want * g).sum(), (x, w))
    got = scaled_cwi(x, target, w)
    grads_got = torch.autograd.grad((got * g).sum(), (x, w))
    torch.testing.assert_close(got, want)
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b)


def test_cwi_gradient_matches_adaptive_average_pooling():
    x = torch.randn(2, 9, 3, 3, requires_grad=True)
    g = torch.randn(2, 32, 3, 3)
    (grad,) = torch.autograd.grad((cwi(x, 32) * g).sum(), x)
    (reference,) = torch.autograd.grad(
        (torch.nn.functional.adaptive_avg_pool3d(x.unsqueeze(1), (32, 3, 3)).squeeze(1) * g).sum(), x)
    torch.testing.assert_close(grad, reference)


# ---------------------------------------------------------------- sampling

def test_two_distinct_widths_sampled_per_conv_in_one_draw(monkeypatch):
    """One draw over the whole width-logit matrix per forward (as the official select2withP): two
    distinct valid choices per conv, mixing weights summing to 1."""
    calls = []
    original = search_net.sample_widths

    def spy(logits, tau, generator, k=2):
        idx, weights = original(logits, tau, generator, k)
        calls.append((idx.tolist(), weights.detach()))
        return idx, weights

    monkeypatch.setattr(search_net, "sample_widths", spy)
    net = _net(20)
    gen = torch.Generator().manual_seed(3)
    for tau in (5.0, 0.1):
        calls.clear()
        net(torch.randn(4, 3, *SMALL), tau, gen)
        assert len(calls) == 1
        idx, weights = calls[0]
        assert len(idx) == len(net.width_convs())
        for row, w in zip(idx, weights):
            assert len(row) == 2 and row[0] != row[1] and all(0 <= i < 8 for i in row)
            torch.testing.assert_close(w.sum(), torch.tensor(1.0))


def test_rows_with_fewer_choices_never_sample_the_missing_ones():
    logits = torch.zeros(3, 8)
    missing = torch.zeros(3, 8)
    missing[1, 3:] = float("-inf")  # a conv with 3 width choices
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx, weights = search_net.sample_widths(logits + missing, 1.0, gen)
        assert all(i < 3 for i in idx[1].tolist()) and torch.isfinite(weights).all()


def test_forward_is_seeded_by_the_generator():
    net = _net(20)
    x = torch.randn(4, 3, *SMALL)
    a = net(x, 1.0, torch.Generator().manual_seed(7))
    b = net(x, 1.0, torch.Generator().manual_seed(7))
    c = net(x, 1.0, torch.Generator().manual_seed(8))
    assert a.shape == (4, 10) and torch.equal(a, b) and not torch.equal(a, c)


def test_block_relu_flag_changes_the_output():
    x = torch.randn(4, 3, *SMALL)
    fixed, buggy = _net(20, seed=1), _net(20, seed=1, block_relu=False)
    a = fixed(x, 1.0, torch.Generator().manual_seed(0))
    b = buggy(x, 1.0, torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)


def test_bottleneck_forward_and_backward():
    net = _net(29, "bottleneck")
    net(torch.randn(2, 3, *SMALL), 1.0).sum().backward()
    assert net.width_logits.grad is not None and net.depth_logits.grad is not None


# ---------------------------------------------------------------- MACs

@pytest.mark.parametrize("depth, block", [(20, "basic"), (56, "basic"), (29, "bottleneck")])
def test_built_rule_expected_macs_equal_exact_macs_when_one_hot(depth, block):
    net = _net(depth, block)
    gen = torch.Generator().manual_seed(depth)
    for _ in range(4):
        _random_one_hot(net, gen)
        exact = _exact(derive_spec(net))
        assert argmax_macs(net) == band_macs(net, "built") == exact
        assert _expected(net, rule="built") == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("rule", ["official", "built"])
def test_full_resnet20_macs(rule):
    net = TASResNet(20)
    _set_one_hot(net, [len(c.choices) - 1 for c in net.width_convs()], [2, 2, 2])
    assert _expected(net, rule=rule) == band_macs(net, rule) == count_macs(build_model("resnet20-cifar")) == 40_813_184


# `estimated_FLOP` (MFLOPs = MACs / 1e6) of the official configs/NeurIPS-2019/*.config at
# AutoDL-Projects f46486e: facts read from the files, not computed by this suite.
RELEASED_ESTIMATED_FLOP = {
    "C010-ResNet20": 22.444472, "C010-ResNet32": 34.945344, "C010-ResNet56": 57.93305,
    "C010-ResNet110": 117.498238, "C010-ResNet164": 173.023672, "C100-ResNet20": 22.433792,
    "C100-ResNet32": 42.47, "C100-ResNet56": 59.472556, "C100-ResNet110": 117.653164,
    "C100-ResNet164": 165.583512, "ImageNet-ResNet18V1": 1120.44032,
}
ARCHS = Path(__file__).resolve().parents[2] / "replications" / "tas" / "archs"


def _released(name: str) -> dict:
    return yaml.safe_load((ARCHS / f"{name}.yaml").read_text())


def _size(spec: dict) -> tuple[int, int]:
    return (224, 224) if spec["family"] == "resnet-imagenet" else (32, 32)


@pytest.mark.parametrize("name", sorted(RELEASED_ESTIMATED_FLOP))
def test_estimated_macs_equal_the_released_configs(name):
    spec = _released(name)
    # The configs print 6 decimals; C100-ResNet32's final config rounds to 2 (tas.md §6 #9).
    places = 2 if name == "C100-ResNet32" else 6
    assert round(estimated_macs(spec, _size(spec)) / 1e6, places) == RELEASED_ESTIMATED_FLOP[name]


def test_estimated_macs_of_imagenet_resnet50_is_near_its_config():
    """2291.316289 in the config; the rule gives 2281.57. The config's xblocks keep 5 of stage 3's 6
    blocks, not one of SearchImagenetResNet's depth choices for it ({2, 4, 6}): the file came from
    another version of the search code, so only closeness (0.43%) is asserted."""
    spec = _released("ImageNet-ResNet50V1")
    assert estimated_macs(spec, _size(spec)) / 1e6 == pytest.approx(2291.316289, rel=0.005)
    assert count_macs(build_model(spec), (3, 224, 224)) / 1e6 == pytest.approx(2309.248169, rel=1e-9)


def _identity_shortcut_macs(spec: dict) -> int:
    """MACs of the 1x1 convs the genotype rule adds to kept stride-1 blocks whose full input and
    output widths are equal but whose chosen ones differ; the search forward has no module there,
    so its expectation leaves them out. Written out over the channel list for CIFAR ResNets."""
    per_block = 2 if spec["block"] == "basic" else 3
    n = (spec["depth"] - 2) // (6 if per_block == 2 else 9)
    total, pos = 0, 1
    for s in range(3):
        for b in range(n):
            cin, cout = spec["channels"][pos - 1], spec["channels"][pos + per_block - 1]
            full_equal = not (s == 0 and b == 0 and per_block == 3)  # a bottleneck's first block widens 16 -> 64
            strided = s > 0 and b == 0  # has a shortcut module: both count it
            if not strided and full_equal and cin != cout and b < spec["blocks"][s]:
                total += cin * cout * (32 >> s) ** 2
            pos += per_block
    return total


@pytest.mark.parametrize("name", sorted(n for n in RELEASED_ESTIMATED_FLOP if n.startswith("C")))
def test_search_flop_values_with_released_choices_forced(name):
    """The search's band value is the config's estimated_FLOP; its expected MACs (one-hot) are the
    same minus the shortcut convs the search network has no module for."""
    spec = _released(name)
    net = TASResNet(spec["depth"], spec["block"], spec["num_classes"])
    widths = [conv.choices.index(c) for conv, c in zip(net.width_convs(), spec["channels"])]
    _set_one_hot(net, widths, [net.depth_choices.index(k) for k in spec["blocks"]])
    assert derive_spec(net)["channels"] == spec["channels"]
    places = 2 if name == "C100-ResNet32" else 6
    assert round(band_macs(net) / 1e6, places) == RELEASED_ESTIMATED_FLOP[name]
    assert _expected(net) == pytest.approx(band_macs(net) - _identity_shortcut_macs(spec), rel=1e-12)


def test_official_expectation_reads_the_full_depth_chain():
    """With stage 1 cut to one block, the next stage's first conv still reads the width chosen for
    stage 1's last block, as the official search forward's expected input channels do."""
    net = TASResNet(20)
    top = [len(c.choices) - 1 for c in net.width_convs()]
    last_of_stage1 = net.stages[0][-1].convs[-1].row
    narrow = list(top)
    narrow[last_of_stage1] = 0  # 4 of 16 channels at the end of stage 1 (a dropped block)
    results = []
    for widths in (top, narrow):
        _set_one_hot(net, widths, [0, 2, 2])
        results.append((_expected(net), _expected(net, rule="built"), argmax_macs(net)))
    (official_top, built_top, exact_top), (official_narrow, built_narrow, exact_narrow) = results
    assert exact_top == exact_narrow and built_top == built_narrow  # the built network never reads it
    # stage 2's first block at 16 x 16 out: its 3x3 conv and its (2x2-pooled) 1x1 shortcut read 4, not 16
    assert official_top - official_narrow == pytest.approx((16 - 4) * 32 * (9 + 1) * 16 * 16, rel=1e-12)


@pytest.mark.parametrize("what", ["width", "depth"])
def test_expected_macs_average_two_exact_counts(what):
    """Expected MACs are linear in each single distribution: a 50/50 mix of two choices of one
    conv (or one stage's depth) gives the mean of the two argmax networks' exact counts."""
    net = _net(56)
    gen = torch.Generator().manual_seed(11)
    widths, depths = _random_one_hot(net, gen)
    row, stage = 3, 1
    pair = (1, 6) if what == "width" else (1, 3)
    specs = []
    for k in pair:
        if what == "width":
            widths[row] = k
        else:
            depths[stage] = k
        _set_one_hot(net, widths, depths)
        specs.append(derive_spec(net))
    assert specs[0] != specs[1]
    with torch.no_grad():
        logits = net.width_logits[row] if what == "width" else net.depth_logits[stage]
        logits[list(pair)] = 1e3
    expected = (_exact(specs[0]) + _exact(specs[1])) / 2
    assert _expected(net, rule="built") == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- loss

def test_flop_loss_branches():
    e = torch.tensor(20.0)
    assert float(flop_loss(e, current=10, target=20, tolerance=5)) == pytest.approx(-math.log(20))
    assert float(flop_loss(e, current=22, target=20, tolerance=5)) == pytest.approx(math.log(20))
    assert float(flop_loss(e, current=22, target=20, tolerance=5, paper_tolerance=True)) == 0
    assert float(flop_loss(e, current=26, target=20, tolerance=5, paper_tolerance=True)) == pytest.approx(math.log(20))
    assert float(flop_loss(e, current=16, target=20, tolerance=5)) == 0
    logits, labels = torch.zeros(2, 10), torch.tensor([0, 1])
    total, ce, flop = arch_loss(logits, labels, e, 30, 20, 5)
    assert float(ce) == pytest.approx(math.log(10))
    assert float(total) == pytest.approx(math.log(10) + 2.0 * math.log(20))


@pytest.mark.parametrize("direction", ["down", "up"])
def test_flop_loss_moves_expected_macs_toward_target(direction):
    net = _net(20)
    current = argmax_macs(net)
    target = current / 4 if direction == "down" else current * 4
    before = _expected(net)
    loss = flop_loss(expected_macs(net), current, target, 0.05 * target)
    loss.backward()
    # Gradient sign on the logit of each conv's largest width.
    grads = torch.stack([net.width_logits.grad[c.row, len(c.choices) - 1] for c in net.width_convs()])
    assert bool((grads > 0).all() if direction == "down" else (grads < 0).all())
    torch.optim.Adam(net.arch_parameters(), lr=0.01).step()
    after = _expected(net)
    assert after < before if direction == "down" else after > before


# ---------------------------------------------------------------- derived spec

def test_derived_spec_builds_round_trips_and_matches_argmax():
    net = _net(56)
    gen = torch.Generator().manual_seed(5)
    widths, depths = _random_one_hot(net, gen)
    with torch.no_grad():  # perturb the logits: the spec depends on the argmax only
        net.width_logits.add_(torch.randn(net.width_logits.shape, generator=gen))
    spec = derive_spec(net)
    assert spec["channels"] == [c.choices[k] for c, k in zip(net.width_convs(), widths)]
    assert spec["blocks"] == [net.depth_choices[j] for j in depths]
    assert len(spec["channels"]) == 1 + 2 * 27
    model = build_model(spec)
    rebuilt = build_model(model.to_spec())
    assert model.to_spec() == rebuilt.to_spec()
    assert [len(getattr(model, n)) for n in model.stage_names] == spec["blocks"]
    assert model(torch.randn(2, 3, *SMALL)).shape == (2, 10)


# ---------------------------------------------------------------- search step

def test_tau_schedules():
    assert tau_at(0, 600) == pytest.approx(5.0)
    assert tau_at(300, 600) == pytest.approx(2.55)
    assert tau_at(600, 600) == pytest.approx(0.1)
    assert tau_at(0, 100, 10, 0.1, "linear") == pytest.approx(10)
    assert tau_at(50, 100, 10, 0.1, "linear") == pytest.approx(5.05)
    with pytest.raises(ValueError):
        tau_at(0, 10, schedule="step")


def _run_step(seed: int = 0, hooks: bool = False):
    torch.manual_seed(seed)
    net = TASResNet(20, image_size=SMALL)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    data = torch.Generator().manual_seed(100)
    train = (torch.randn(4, 3, *SMALL, generator=data), torch.randint(10, (4,), generator=data))
    valid = (torch.randn(4, 3, *SMALL, generator=data), torch.randint(10, (4,), generator=data))
    snaps = {"before": {n: p.detach().clone() for n, p in net.named_parameters()}}
    if hooks:
        def snap(name):
            return lambda *_: snaps.__setitem__(name, {n: p.detach().clone() for n, p in net.named_parameters()})
        w_opt.register_step_post_hook(snap("after_w"))
        a_opt.register_step_post_hook(snap("after_a"))
    current = band_macs(net)
    out = search_step(net, w_opt, a_opt, train, valid, tau=5.0, target_macs=0.5 * current,
                      tolerance=0.05 * current, generator=torch.Generator().manual_seed(seed))
    return net, out, snaps, current


def test_search_step_is_deterministic_and_consistent():
    net1, out1, _, current = _run_step()
    net2, out2, _, _ = _run_step()
    assert out1 == out2
    for (n, a), b in zip(net1.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), n
    # Independent checks of the reported values: the band MACs are counted before the arch
    # update, and the argmax shape is too large for the target, so the FLOP loss is +log E[MACs].
    assert out1["band_macs"] == current
    assert out1["flop_loss"] == pytest.approx(math.log(out1["expected_macs"]))
    assert out1["arch_loss"] == pytest.approx(out1["arch_ce"] + 2.0 * out1["flop_loss"])
    assert all(math.isfinite(v) for v in out1.values())


def test_search_step_updates_weights_then_architecture():
    net, _, snaps, _ = _run_step(hooks=True)
    arch = {"width_logits", "depth_logits"}

    def changed(a, b):
        return {n for n in snaps[a] if not torch.equal(snaps[a][n], snaps[b][n])}

    weight_half = changed("before", "after_w")
    arch_half = changed("after_w", "after_a")
    assert weight_half and not weight_half & arch
    assert "stem.conv.weight" in weight_half and "fc.weight" in weight_half
    assert arch_half == arch


# The one-step golden test, against a forward written out independently: test_tas_golden.py.
