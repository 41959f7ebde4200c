"""With one width per conv and one depth per stage forced (one-hot logits, a single sampled
choice), TAS's search network computes exactly its derived pruned network: the `resnet-cifar`
spec that `derive_spec` writes, built by the model registry and given the search network's
weights, sliced to the chosen widths. The reference is the registry's ordinary network, not the
search network's own forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from nas_impl.methods.tas import TASResNet, derive_spec
from nas_impl.methods.tas.search_net import SearchBlock, WidthConv
from nas_impl.models import build_model

SIZE = (16, 16)


def _force(net: TASResNet, widths: list[int], depths: list[int], big: float = 1e3) -> None:
    with torch.no_grad():
        net.width_logits.fill_(-big)
        net.depth_logits.fill_(-big)
        for conv, k in zip(net.width_convs(), widths):
            net.width_logits[conv.row, k] = big
        for s, j in enumerate(depths):
            net.depth_logits[s, j] = big


def _choices(net: TASResNet, gen: torch.Generator) -> list[int]:
    """A width index per conv: internal convs at random; every block output of a stage (and the
    stem, for the first stage) at one width, so that residual adds meet equal widths, as in the
    derived network, where a stride-1 block whose input and output widths differ gets a conv."""
    stage_out = [int(torch.randint(len(net.stages[s][0].convs[-1].choices), (1,), generator=gen)) for s in range(3)]
    widths = [stage_out[0]]
    for s, stage in enumerate(net.stages):
        for blk in stage:
            widths += [int(torch.randint(len(c.choices), (1,), generator=gen)) for c in blk.convs[:-1]]
            widths.append(stage_out[s])
    if net.block == "bottleneck":  # the first block's conv shortcut (16 -> 64) must stay a conv when derived
        widths[0] = len(net.stem.choices) - 1
        assert net.stem.choices[widths[0]] != net.stages[0][0].convs[-1].choices[stage_out[0]]
    return widths


def _randomise_bns(net: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def _identity_bn(bn: nn.BatchNorm2d) -> None:
    """A BN that is exactly the identity in eval mode (where the derived network has none)."""
    with torch.no_grad():
        bn.weight.fill_(1.0), bn.bias.zero_(), bn.running_mean.zero_(), bn.running_var.fill_(1.0)
    bn.eps = 0.0


def _copy_conv(dst: nn.Conv2d, src: WidthConv, k: int) -> None:
    dst.weight.data.copy_(src.conv.weight[: src.choices[k], : dst.in_channels])


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    dst.load_state_dict(src.state_dict())
    dst.eps = src.eps


def _load_derived(model: nn.Module, net: TASResNet, widths: list[int], blocks: list[int]) -> None:
    """The search network's weights at the chosen widths, into the derived network."""
    row = {id(conv): k for conv, k in zip(net.width_convs(), widths)}
    _copy_conv(model.conv1, net.stem, widths[0])
    _copy_bn(model.bn1, net.stem.bns[widths[0]])
    for s, stage in enumerate(net.stages):
        for blk, derived in zip(stage[: blocks[s]], getattr(model, model.stage_names[s])):
            pairs = [(derived.conv1, derived.bn1), (derived.conv2, derived.bn2)]
            if net.block == "bottleneck":
                pairs.append((derived.conv3, derived.bn3))
            for conv, (dconv, dbn) in zip(blk.convs, pairs):
                _copy_conv(dconv, conv, row[id(conv)])
                _copy_bn(dbn, conv.bns[row[id(conv)]])
            _load_shortcut(blk, derived.downsample, row[id(blk.convs[-1])])
    model.fc.weight.data.copy_(net.fc.weight[:, : model.fc.in_features])
    model.fc.bias.data.copy_(net.fc.bias)


def _load_shortcut(blk: SearchBlock, derived: nn.Module | None, k: int) -> None:
    if blk.shortcut is None:
        assert derived is None
        return
    assert derived is not None, "the search block has a shortcut conv, the derived block an identity"
    convs = [m for m in derived if isinstance(m, nn.Conv2d)]
    bns = [m for m in derived if isinstance(m, nn.BatchNorm2d)]
    _copy_conv(convs[0], blk.shortcut, k)
    if bns:
        _copy_bn(bns[0], blk.shortcut.bns[k])
    else:
        _identity_bn(blk.shortcut.bns[k])


@pytest.mark.parametrize("depth, block, depths", [
    (20, "basic", [2, 2, 2]),  # full depth
    (32, "basic", [1, 0, 2]),  # depth-pruned stages: 5 -> 3 and 1 blocks kept
    (164, "bottleneck", [0, 4, 9]),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_one_hot_search_network_equals_its_derived_network(depth, block, depths, seed):
    torch.manual_seed(seed)
    net = TASResNet(depth, block, image_size=SIZE, samples=1).eval()
    gen = torch.Generator().manual_seed(seed)
    _randomise_bns(net, gen)
    depths = [min(j, len(net.depth_choices) - 1) for j in depths]
    widths = _choices(net, gen)
    _force(net, widths, depths)
    spec = derive_spec(net)
    assert spec["blocks"] == [net.depth_choices[j] for j in depths]
    model = build_model(spec).eval()
    _load_derived(model, net, widths, spec["blocks"])
    x = torch.randn(3, 3, *SIZE, generator=gen)
    with torch.no_grad():
        expected = model(x)
        got = net(x, tau=1.0, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_a_narrow_choice_reaches_the_next_layer_narrow():
    """The mixed output of a conv has the larger sampled width, not the conv's full width."""
    torch.manual_seed(0)
    conv = WidthConv(8, 16, 3, 1, row=0)
    x = torch.randn(2, 5, 6, 6)  # a 5-wide input to an 8-wide conv: the weight's first 5 input channels
    out = conv(x, torch.tensor([0, 2]), torch.tensor([0.25, 0.75]))
    assert out.shape[1] == max(conv.choices[0], conv.choices[2]) < 16
