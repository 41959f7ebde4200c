"""One seeded TAS search step against golden values computed without the search network's forward.

The reference below writes the official search forward out with plain torch ops, from the
description of `SearchCifarResNet.py` (AutoDL-Projects f46486e): Gumbel sampling of 2 widths per
conv, the input zero-padded to the conv's full input width and the output sliced per width, each
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


def _pick(logits: torch.Tensor, gen: torch.Generator, k: int = 2) -> tuple[list[int], torch.Tensor]:
    u = torch.rand(logits.shape, generator=gen, dtype=logits.dtype)
    z = (F.log_softmax(logits, -1) - torch.log(-torch.log(u))) / TAU
    idx = torch.multinomial(F.softmax(z, -1).detach(), min(k, logits.numel()), replacement=False, generator=gen)
    return idx.tolist(), F.softmax(z[idx], -1)


def _conv(x, layer, net, gen, pick=None):
    """One searched conv: returns the mixed output and the pick (indices, weights) it used."""
    choices = layer.choices
    idx, weights = pick or _pick(net.width_logits[layer.row, : len(choices)], gen)
    if layer.pool is not None:
        x = F.avg_pool2d(x, 2)
    conv = layer.conv
    y = F.conv2d(_pad_channels(x, conv.in_channels), conv.weight, None, conv.stride, conv.padding)
    outs = [F.batch_norm(y[:, : choices[k]], None, None, layer.bns[k].weight, layer.bns[k].bias, True, 0.1,
                         layer.bns[k].eps) for k in idx]
    top = max(o.shape[1] for o in outs)
    return sum(w * _cwi(o, top) for w, o in zip(weights, outs)), (idx, weights)


def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    wide = max(a.shape[1], b.shape[1])
    return _pad_channels(a, wide) + _pad_channels(b, wide)


def reference_forward(net: TASResNet, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = F.relu(_conv(x, net.stem, net, gen)[0])
    for s, stage in enumerate(net.stages):
        u = torch.rand(net.depth_logits[s].shape, generator=gen)
        depth_p = F.softmax((F.log_softmax(net.depth_logits[s], -1) - torch.log(-torch.log(u))) / TAU, -1)
        exits = []
        for b, blk in enumerate(stage):
            out, pick = x, None
            for i, layer in enumerate(blk.convs):
                out, pick = _conv(out, layer, net, gen)
                if i < len(blk.convs) - 1:
                    out = F.relu(out)
            residual = x if blk.shortcut is None else _conv(x, blk.shortcut, net, gen, pick)[0]
            x = F.relu(_add(residual, out))
            if b + 1 in net.depth_choices:
                exits.append(x)
        widest = max(e.shape[1] for e in exits)
        x = sum(p * _cwi(e, widest) for p, e in zip(depth_p, exits))
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
