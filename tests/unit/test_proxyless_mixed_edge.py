"""ProxylessNAS's mixed edge against hand computations: forced paths equal the candidates, the
full_v2 / full / two arch gradients equal the BinaryConnect formula applied to gate gradients
obtained from an explicit mixture of every path, weight gradients equal those of the active
candidate run alone, `two`'s rescaling keeps the unsampled paths' probabilities, uniform warm-up
sampling, and the REINFORCE reward, baseline and loss gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from nas_impl.methods.proxylessnas.mixed_edge import (
    MODES,
    MixedEdge,
    MovingAverageBaseline,
    Zero,
    mixed_edges,
    reinforce_loss,
    reinforce_reward,
)

D = torch.float64
C = 2


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _candidates(seed: int, kernels=(1, 3, 5)) -> list[nn.Module | None]:
    """Small conv + tanh candidates (float64, seeded weights) and the Zero op last."""
    g = _gen(seed)
    ops: list[nn.Module | None] = []
    for k in kernels:
        op = nn.Sequential(nn.Conv2d(C, C, k, padding=k // 2), nn.Tanh()).to(D)
        with torch.no_grad():
            for p in op.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=D))
        ops.append(op)
    ops.append(None)
    return ops


def _edge(seed: int = 0, mode=None, alpha_scale: float = 1.0, **kw) -> MixedEdge:
    edge = MixedEdge(_candidates(seed), mode=mode, generator=_gen(seed + 100), **kw).to(D)
    with torch.no_grad():  # spread the logits so that the probabilities differ clearly
        edge.alpha.copy_(alpha_scale * torch.randn(edge.n_choices, generator=_gen(seed + 200), dtype=D))
    return edge


def _input(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, C, 5, 5, generator=_gen(seed), dtype=D)


def _target(seed: int = 2) -> torch.Tensor:
    return torch.randn(2, C, 5, 5, generator=_gen(seed), dtype=D)


def _loss(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Not linear in y, so dL/dy depends on the active path's output."""
    return torch.sum(t * y) + 0.5 * torch.sum(y ** 2)


def _outputs(edge: MixedEdge, x: torch.Tensor) -> list[torch.Tensor]:
    """o_j(x) for every candidate, by hand (Zero: zeros of x's shape)."""
    with torch.no_grad():
        return [torch.zeros_like(x) if isinstance(op, Zero) else op(x) for op in edge.candidates]


def _slow_gate_grads(outputs: list[torch.Tensor], active: int, t: torch.Tensor) -> torch.Tensor:
    """dL/dg from an explicit mixture y = sum_j g_j o_j with one-hot leaf gates."""
    g = torch.zeros(len(outputs), dtype=D)
    g[active] = 1.0
    g.requires_grad_(True)
    y = sum(g[j] * outputs[j] for j in range(len(outputs)))
    _loss(y, t).backward()
    return g.grad


def _binary_connect(alpha: torch.Tensor, gate_grads: torch.Tensor, idx: list[int] | None = None) -> torch.Tensor:
    """dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i), over `idx` (renormalised) or all paths."""
    idx = list(range(len(alpha))) if idx is None else idx
    logits = [float(alpha[i]) for i in idx]
    z = sum(math.exp(a) for a in logits)
    p = [math.exp(a) / z for a in logits]
    grad = torch.zeros(len(alpha), dtype=D)
    for a, i in enumerate(idx):
        for b, j in enumerate(idx):
            grad[i] += float(gate_grads[j]) * p[b] * ((1.0 if a == b else 0.0) - p[a])
    return grad


# --- forced paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_forced_path_equals_the_candidate(mode):
    edge, x = _edge(mode=mode), _input()
    outputs = _outputs(edge, x)
    for i in range(edge.n_choices):
        edge.set_chosen(i)
        y = edge(x)
        assert y.shape == x.shape
        assert torch.equal(y, outputs[i]), f"mode {mode}: path {i}"
    assert torch.equal(outputs[-1], torch.zeros_like(x)) and edge.is_zero(3) and edge.is_zero_active


def test_zero_op_matches_the_official_zero_layer_shape():
    x = _input()
    assert torch.equal(Zero()(x), torch.zeros_like(x))
    assert Zero(stride=2)(x).shape == (2, C, 2, 2)


# --- full_v2 / full: gate gradients and the BinaryConnect rule ---------------------------------


@pytest.mark.parametrize("mode", ["full_v2", "full"])
def test_arch_grad_equals_the_explicit_mixture(mode):
    x, t = _input(), _target()
    for active in range(3):  # every non-Zero path forced
        edge = _edge(seed=active, mode=mode)
        outputs = _outputs(edge, x)
        edge.set_chosen(active)
        _loss(edge(x), t).backward()
        edge.set_arch_param_grad()
        gate_grads = _slow_gate_grads(outputs, active, t)
        assert torch.allclose(edge.gates.grad, gate_grads, rtol=1e-12, atol=1e-12)
        expected = _binary_connect(edge.alpha.detach(), gate_grads)
        assert torch.allclose(edge.alpha.grad, expected, rtol=1e-10, atol=1e-12)
        assert edge.alpha.grad.abs().max() > 1e-3  # a real gradient, not zeros


def test_full_v2_after_binarize_matches_and_samples_from_p():
    x, t = _input(), _target()
    gen, seen = _gen(7), set()
    for step in range(12):
        edge = _edge(seed=step, mode="full_v2")
        active = edge.binarize(gen)
        seen.add(active)
        assert edge.active_index == [active] and sorted(edge.inactive_index + [active]) == list(range(4))
        assert torch.equal(edge.gates.detach(), torch.eye(4, dtype=D)[active])
        if edge.is_zero_active:  # an official residual block skips the edge; the step skips alpha
            continue
        outputs = _outputs(edge, x)
        _loss(edge(x), t).backward()
        edge.set_arch_param_grad()
        expected = _binary_connect(edge.alpha.detach(), _slow_gate_grads(outputs, active, t))
        assert torch.allclose(edge.alpha.grad, expected, rtol=1e-10, atol=1e-12)
        assert torch.allclose(edge.log_prob, torch.log(torch.softmax(edge.alpha.detach(), 0)[active]))
    assert len(seen) >= 3


def test_set_arch_param_grad_adds_to_an_existing_gradient():
    x, t = _input(), _target()
    edge = _edge(mode="full_v2")
    edge.set_chosen(1)
    _loss(edge(x), t).backward()
    preset = torch.tensor([0.1, -0.2, 0.3, -0.4], dtype=D)
    edge.alpha.grad = preset.clone()
    edge.set_arch_param_grad()
    expected = preset + _binary_connect(edge.alpha.detach(), _slow_gate_grads(_outputs(edge, x), 1, t))
    assert torch.allclose(edge.alpha.grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["full_v2", "full"])
def test_zero_active_skips_the_arch_gradient_unless_asked(mode):
    x, t = _input(), _target()
    edge = _edge(mode=mode)
    edge.set_chosen(3)
    xs = x.clone().requires_grad_(True)
    y = edge(xs)
    _loss(y, t).backward()
    assert torch.equal(y, torch.zeros_like(x))
    assert xs.grad is None or torch.equal(xs.grad, torch.zeros_like(x))  # nothing reaches x
    edge.alpha.grad = torch.ones(4, dtype=D)
    edge.set_arch_param_grad()
    assert edge.alpha.grad is None  # official: the step leaves this edge's alpha alone

    edge = _edge(mode=mode, skip_arch_grad_when_zero=False)
    edge.set_chosen(3)
    _loss(edge(x), t).backward()
    edge.set_arch_param_grad()
    expected = _binary_connect(edge.alpha.detach(), _slow_gate_grads(_outputs(edge, x), 3, t))
    assert torch.allclose(edge.alpha.grad, expected, rtol=1e-10, atol=1e-12)


# --- weight gradients ---------------------------------------------------------------------------


def _weight_grads_case(mode, active_from, full_v2_weight_grads=False):
    """Run stem -> edge -> loss and stem -> active candidate -> loss; return both sets of grads."""
    x, t = _input(), _target()
    edge = _edge(mode=mode, full_v2_weight_grads=full_v2_weight_grads)
    stem = nn.Conv2d(C, C, 3, padding=1).to(D)
    active = active_from(edge)
    ref_op = edge.candidates[active]
    _loss(ref_op(stem(x)), t).backward()
    ref_stem = [p.grad.clone() for p in stem.parameters()]
    ref_active = [p.grad.clone() for p in ref_op.parameters()]
    for p in list(stem.parameters()) + list(edge.parameters()):
        p.grad = None
    _loss(edge(stem(x)), t).backward()
    return edge, active, stem, ref_stem, ref_active


def _two_pair_without_zero(edge: MixedEdge) -> int:
    gen = _gen(11)
    while True:
        active = edge.binarize(gen)
        if 3 not in edge.active_index + edge.inactive_index:
            return active


@pytest.mark.parametrize("mode", [None, "full", "two", "full_v2"])
def test_active_weights_get_the_gradient_of_running_alone(mode):
    if mode == "two":
        pick = _two_pair_without_zero
    else:
        pick = lambda edge: (edge.set_chosen(1), 1)[1]  # noqa: E731
    for weight_grads in ([False, True] if mode == "full_v2" else [False]):
        edge, active, stem, ref_stem, ref_active = _weight_grads_case(mode, pick, weight_grads)
        for p, r in zip(stem.parameters(), ref_stem):  # the input's gradient flows through the edge
            assert torch.allclose(p.grad, r, rtol=1e-12, atol=1e-14)
        for i, op in enumerate(edge.candidates):
            for p, r in zip(op.parameters(), ref_active):
                if i == active and (mode != "full_v2" or weight_grads):
                    assert p.grad is not None and torch.allclose(p.grad, r, rtol=1e-12, atol=1e-14)
                else:  # inactive paths; full_v2's active path by default (official)
                    assert p.grad is None, f"mode {mode}: candidate {i} got a gradient"


def test_binarize_clears_candidate_gradients():
    edge = _edge(mode=None)
    edge.set_chosen(0)
    _loss(edge(_input()), _target()).backward()
    assert edge.candidates[0][0].weight.grad is not None
    edge.binarize(_gen(0))
    assert all(p.grad is None for p in edge.candidates.parameters())


# --- two ----------------------------------------------------------------------------------------


def test_two_updates_only_the_pair_and_keeps_the_other_probabilities():
    x, t = _input(), _target()
    edge = _edge(seed=6, mode="two")
    opt = torch.optim.Adam([edge.alpha], lr=0.05, betas=(0.0, 0.999), eps=1e-8)  # official betas
    gen, updated, pairs = _gen(3), 0, set()
    for _ in range(12):
        before = edge.alpha.detach().clone()
        p_before = torch.softmax(before, 0)
        active = edge.binarize(gen)
        pair = edge.active_index + edge.inactive_index
        pairs.add(frozenset(pair))
        assert len(pair) == 2 and pair[0] == active and pair[0] != pair[1]
        assert torch.equal(edge.gates.detach(), torch.eye(4, dtype=D)[active])
        slice_p = torch.softmax(before[pair], 0)
        assert torch.allclose(edge.current_probs.detach()[pair], slice_p)
        opt.zero_grad(set_to_none=True)
        outputs = _outputs(edge, x)
        y = edge(x)
        assert torch.equal(y, outputs[active])  # the forward is the active path alone
        _loss(y, t).backward()
        edge.set_arch_param_grad()
        if edge.is_zero_active:
            assert edge.alpha.grad is None
        else:
            gate_grads = _slow_gate_grads(outputs, active, t)
            assert torch.allclose(edge.gates.grad[pair], gate_grads[pair], rtol=1e-12, atol=1e-12)
            expected = _binary_connect(before, gate_grads, idx=pair)
            assert torch.allclose(edge.alpha.grad, expected, rtol=1e-10, atol=1e-12)
        opt.step()
        edge.rescale_updated_arch_param()
        after = edge.alpha.detach()
        p_after = torch.softmax(after, 0)
        others = [i for i in range(4) if i not in pair]
        assert torch.equal(after[others], before[others])
        assert torch.allclose(p_after[others], p_before[others], rtol=0, atol=1e-6)
        assert torch.allclose(p_after[others], p_before[others], rtol=1e-12, atol=1e-15)
        assert math.isclose(float(torch.logsumexp(after[pair], 0)), float(torch.logsumexp(before[pair], 0)),
                            rel_tol=1e-12, abs_tol=1e-12)
        if not edge.is_zero_active:
            updated += 1
            assert (p_after[pair] - p_before[pair]).abs().min() > 1e-4  # the pair did move
    assert updated >= 6 and len(pairs) >= 3


def test_two_draws_the_active_path_from_the_renormalised_pair():
    """P(active = i) = sum_j P(pair {i, j}) * p_i / (p_i + p_j), pairs drawn without replacement
    (not p_i, which taking the first draw of the pair as the active path would give)."""
    edge = MixedEdge([nn.Identity() for _ in range(3)], mode="two").to(D)
    p = [0.7, 0.2, 0.1]
    with torch.no_grad():
        edge.alpha.copy_(torch.log(torch.tensor(p, dtype=D)))
    expected = []
    for i in range(3):
        total = 0.0
        for j in range(3):
            if j != i:
                pair = p[i] * p[j] / (1 - p[i]) + p[j] * p[i] / (1 - p[j])
                total += pair * p[i] / (p[i] + p[j])
        expected.append(total)
    n, gen = 3000, _gen(4)
    counts = torch.bincount(torch.tensor([edge.binarize(gen) for _ in range(n)]), minlength=3)
    assert ((counts / n - torch.tensor(expected, dtype=D)).abs() < 0.03).all(), (counts, expected)
    assert abs(expected[0] - p[0]) > 0.06  # the test tells the two laws apart


def test_two_needs_a_sampled_pair():
    edge = _edge(mode="two")
    edge.set_chosen(0)
    _loss(edge(_input()), _target()).backward()
    with pytest.raises(RuntimeError, match="pair"):
        edge.set_arch_param_grad()


# --- weight-step sampling -------------------------------------------------------------------------


def test_binarize_in_mode_none_samples_from_p():
    """Weight steps and the warm-up sample one path from softmax(alpha) (the official `binarize`)."""
    edge = _edge()
    with torch.no_grad():
        edge.alpha.copy_(torch.tensor([3.0, 0.0, -2.0, 1.0], dtype=D))
    n, gen = 4000, _gen(0)
    edge.mode = None
    counts = torch.bincount(torch.tensor([edge.binarize(gen) for _ in range(n)]), minlength=4)
    assert ((counts / n - torch.softmax(edge.alpha.detach(), 0)).abs() < 0.03).all(), counts


# --- alpha init, argmax, entropy ------------------------------------------------------------------


def test_init_argmax_and_entropy():
    edge = MixedEdge([nn.Identity() for _ in range(4000)], generator=_gen(0))
    a = edge.alpha.detach()
    assert abs(float(a.std()) - 1e-3) < 1e-4 and abs(float(a.mean())) < 1e-4
    edge = _edge()
    with torch.no_grad():
        edge.alpha.copy_(torch.tensor([0.5, 2.0, -1.0, 1.0], dtype=D))
    assert edge.chosen_index() == 1
    z = sum(math.exp(v) for v in [0.5, 2.0, -1.0, 1.0])
    p = [math.exp(v) / z for v in [0.5, 2.0, -1.0, 1.0]]
    assert math.isclose(float(edge.entropy().detach()), -sum(q * math.log(q + 1e-8) for q in p), rel_tol=1e-12)
    with pytest.raises(ValueError, match="mode"):
        edge.mode = "fullv2"
    other = _edge(seed=1)
    net = nn.Sequential(edge, nn.Sequential(nn.Identity(), other))
    assert list(mixed_edges(net)) == [edge, other]


# --- REINFORCE ------------------------------------------------------------------------------------


def test_reinforce_reward():
    assert math.isclose(reinforce_reward(0.7, 90.0, 80.0), 0.7 * math.exp(0.1 * math.log(80.0 / 90.0)))
    assert math.isclose(reinforce_reward(0.7, 90.0, 80.0, tradeoff=0.5), 0.7 * math.sqrt(80.0 / 90.0))
    assert reinforce_reward(0.7, None, None) == 0.7


def test_moving_average_baseline_sequence():
    b = MovingAverageBaseline()
    assert b.value is None
    batches = [[0.5, 0.7], [0.2, 0.4], [0.9], [0.1, 0.1, 0.4]]
    expected = None
    for rewards in batches:
        mean = sum(rewards) / len(rewards)
        expected = mean if expected is None else 0.01 * expected + 0.99 * mean
        assert math.isclose(b.update(rewards), expected, rel_tol=1e-12)
    by_hand = 0.01 * (0.01 * (0.01 * 0.6 + 0.99 * 0.3) + 0.99 * 0.9) + 0.99 * 0.2  # b = 0.01 b + 0.99 mean
    assert math.isclose(b.value, by_hand, rel_tol=1e-12)
    state = b.state_dict()
    b2 = MovingAverageBaseline(decay=0.5)
    b2.load_state_dict(state)
    assert b2.value == b.value and b2.decay == 0.99


def test_reinforce_loss_gradient_equals_advantage_times_score():
    edges = [MixedEdge([nn.Identity() for _ in range(n)]).to(D) for n in (3, 4)]
    for k, e in enumerate(edges):
        with torch.no_grad():
            e.alpha.copy_(torch.randn(e.n_choices, generator=_gen(k), dtype=D))
    gen = _gen(9)
    rewards = [float(r) for r in torch.rand(10, generator=gen, dtype=D)]
    log_probs, chosen = [], []
    for _ in rewards:
        chosen.append([e.binarize(gen) for e in edges])
        log_probs.append(sum(e.log_prob for e in edges))
    baseline = MovingAverageBaseline()
    b = baseline.update(rewards)
    assert math.isclose(b, sum(rewards) / 10)
    rewards[0] += 0.3  # make the advantages not sum to zero
    reinforce_loss(log_probs, rewards, b).backward()
    for k, e in enumerate(edges):
        a = [float(v) for v in e.alpha.detach()]
        z = sum(math.exp(v) for v in a)
        p = [math.exp(v) / z for v in a]
        expected = torch.zeros(e.n_choices, dtype=D)
        for r, c in zip(rewards, chosen):
            for i in range(e.n_choices):  # official: (R - b) * grad of -log p(c), averaged
                expected[i] += (r - b) * -((1.0 if i == c[k] else 0.0) - p[i]) / len(rewards)
        assert torch.allclose(e.alpha.grad, expected, rtol=1e-10, atol=1e-13), k
        assert e.alpha.grad.abs().max() > 1e-4
