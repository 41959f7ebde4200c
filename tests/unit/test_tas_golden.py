"""One seeded TAS search step against golden values computed without the search network's forward.

The reference below writes the official search forward out with plain torch ops, from the
description of `SearchCifarResNet.py` (AutoDL-Projects f46486e): Gumbel sampling of 2 widths per
conv in one draw over all convs, then the depth probabilities of all stages, the input zero-padded to the conv's full input width and the output sliced per width, each
width with its own BN (batch statistics), CWI by `adaptive_avg_pool3d` to the larger width, residual
adds over zero-padded maps, the shortcut with the block's last conv's sample, stage exits mixed by
Gumbel-softmax depth probabilities, and the classifier over zero-padded features. It reads the
network's weights only. The optimiser updates are written out too; only the expected MACs
(pinned against the released configs in test_tas.py) come from the suite.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas_impl.methods.tas import TASResNet, band_macs, expected_macs, search_step

SMALL = (8, 8)
TAU = 5.0


def _pad_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    return torch.cat([x, x.new_zeros(x.shape[0], channels - x.shape[1], *x.shape[2:])], 1)


def _cwi(x: torch.Tensor, channels: int) -> torch.Tensor:
    return F.adaptive_avg_pool3d(x.unsqueeze(1), (channels, *x.shape[2:])).squeeze(1)


def _gumbel(logits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(logits.shape, generator=gen, dtype=logits.dtype)
    return (F.log_softmax(logits, -1) - torch.log(-torch.log(u))) / TAU


def _conv(x, layer, picks):
    """One searched conv mixing the candidates sampled for its row (or its block's last conv's)."""
    choices = layer.choices
    idx, weights = picks
    if layer.pool is not None:
        x = F.avg_pool2d(x, 2)
    conv = layer.conv
    y = F.conv2d(_pad_channels(x, conv.in_channels), conv.weight, None, conv.stride, conv.padding)
    outs = [F.batch_norm(y[:, : choices[k]], None, None, layer.bns[k].weight, layer.bns[k].bias, True, 0.1,
                         layer.bns[k].eps) for k in idx]
    top = max(o.shape[1] for o in outs)
    return sum(w * _cwi(o, top) for w, o in zip(weights, outs))


def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    wide = max(a.shape[1], b.shape[1])
    return _pad_channels(a, wide) + _pad_channels(b, wide)


def reference_forward(net: TASResNet, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    # One Gumbel draw over all width rows and a multinomial pick of 2 per row, then one draw for the
    # depths of all stages: the order of the official search_forward (select2withP twice).
    z = _gumbel(net.width_logits, gen)
    idx = torch.multinomial(F.softmax(z, -1).detach(), 2, replacement=False, generator=gen)
    mix = F.softmax(z.gather(1, idx), -1)
    picks = [(row.tolist(), w) for row, w in zip(idx, mix)]
    depth_p = F.softmax(_gumbel(net.depth_logits, gen), -1)
    x = F.relu(_conv(x, net.stem, picks[net.stem.row]))
    for s, stage in enumerate(net.stages):
        exits = []
        for b, blk in enumerate(stage):
            out = x
            for i, layer in enumerate(blk.convs):
                out = _conv(out, layer, picks[layer.row])
                if i < len(blk.convs) - 1:
                    out = F.relu(out)
            last = picks[blk.convs[-1].row]
            residual = x if blk.shortcut is None else _conv(x, blk.shortcut, last)
            x = F.relu(_add(residual, out))
            if b + 1 in net.depth_choices:
                exits.append(x)
        widest = max(e.shape[1] for e in exits)
        x = sum(p * _cwi(e, widest) for p, e in zip(depth_p[s], exits))
    features = _pad_channels(x.mean((2, 3))[:, :, None, None], net.fc.in_features).flatten(1)
    return F.linear(features, net.fc.weight, net.fc.bias)


def _batches():
    data = torch.Generator().manual_seed(100)
    train = (torch.randn(4, 3, *SMALL, generator=data), torch.randint(10, (4,), generator=data))
    valid = (torch.randn(4, 3, *SMALL, generator=data), torch.randint(10, (4,), generator=data))
    return train, valid


def _fresh(seed: int = 0) -> TASResNet:
    torch.manual_seed(seed)
    return TASResNet(20, image_size=SMALL)


def test_reference_forward_matches_the_search_network():
    net = _fresh()
    x = _batches()[0][0]
    got = net(x, TAU, torch.Generator().manual_seed(3))
    want = reference_forward(net, x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_search_step_matches_a_step_written_out_by_hand():
    """CE on the weights' batch and one SGD-Nesterov update written out (first step: buffer =
    gradient + weight decay), then CE + 2 * log E[MACs] (the argmax shape is above the target) on
    the architecture's batch and Adam's first update written out (-lr * g / (|g| + eps), the bias
    corrections cancel), all through the reference forward."""
    train, valid = _batches()
    net = _fresh()
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    before = net.width_logits.detach().clone()
    current = band_macs(net)
    out = search_step(net, w_opt, a_opt, train, valid, tau=TAU, target_macs=0.5 * current,
                      tolerance=0.05 * current, generator=torch.Generator().manual_seed(0))

    ref = _fresh()
    gen = torch.Generator().manual_seed(0)
    weights = ref.weight_parameters()
    grads = torch.autograd.grad(F.cross_entropy(reference_forward(ref, train[0], gen), train[1]), weights,
                                allow_unused=True)
    with torch.no_grad():
        for p, g in zip(weights, grads):
            if g is not None:
                d = g + 5e-4 * p
                p -= 0.1 * (d + 0.9 * d)  # Nesterov: d + momentum * buffer, buffer = d on the first step
    ce = F.cross_entropy(reference_forward(ref, valid[0], gen), valid[1])
    loss = ce + 2.0 * torch.log(expected_macs(ref))
    arch = ref.arch_parameters()
    grads = torch.autograd.grad(loss, arch)
    with torch.no_grad():
        for p, g in zip(arch, grads):
            d = g + 1e-3 * p
            p -= 1e-3 * d / (d.abs() + 1e-8)
    assert out["arch_ce"] == pytest.approx(ce.item(), rel=1e-5)
    for (name, got), want in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)
    # Adam's first step moves every architecture logit by its learning rate, whatever the gradient's size.
    moved = (net.width_logits.detach() - before).abs()
    torch.testing.assert_close(moved, torch.full_like(moved, 1e-3), rtol=1e-4, atol=0)
