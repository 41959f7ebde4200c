"""Family `pyramid-tree` (ProxylessNAS's released CIFAR-10 net `proxyless_cifar`): cell strings,
the released net against ../shared/reference/proxylessnas.md §2, counts of a small spec from
first principles, the tree cell's computation, round trips and bad specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.metrics import count_macs, count_params
from nas_impl.models import build_model, natural_input, normalize_spec, spec_for
from nas_impl.models.pyramid_tree import (GRAMMAR, PROXYLESS_CIFAR, ChannelShuffle, TreeCell, TreeHalf, TreePath,
                                          cell_ops, format_cell, op_counts, parse_cell, tree_op)

ROOT = Path(__file__).resolve().parents[2]
ARCH = ROOT / "replications/proxylessnas/archs/proxyless_cifar.yaml"
FIRST = "sep7(sep3d2+id)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7)"  # block 0 of proxyless_cifar
SEP_KERNEL = {"sep3": 3, "sep5": 5, "sep7": 7, "sep3d2": 3}  # depthwise kernel of each separable op

_MODELS: dict[str, nn.Module] = {}


def _released() -> nn.Module:
    if "net" not in _MODELS:
        _MODELS["net"] = build_model("proxyless-cifar").eval()
    return _MODELS["net"]


def _spec(**keys):
    return {"family": "pyramid-tree", **keys}


def _same_structure(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(sa[k].shape == sb[k].shape for k in sa)


# Cell strings --------------------------------------------------------------------------------

def test_parse_and_format_are_inverse():
    cell = parse_cell(FIRST)
    assert cell == ((("sep7", ("sep3d2", "id")), ("max3", ("sep7", "max3"))),
                    (("sep5", ("sep5", "sep5")), ("sep3d2", ("sep7", "sep7"))))
    assert format_cell(cell) == FIRST
    assert cell_ops(cell) == ["sep7", "sep3d2", "id", "max3", "sep7", "max3",
                              "sep5", "sep5", "sep5", "sep3d2", "sep7", "sep7"]
    assert parse_cell(" sep7 ( sep3d2 + id ) + max3(sep7+max3)|sep5(sep5+sep5)+sep3d2(sep7+sep7)\n") == cell
    for text in PROXYLESS_CIFAR["cells"]:
        assert format_cell(parse_cell(text)) == text


def test_a_spec_keeps_the_canonical_spelling():
    cells = ["id(id+id)+id(id+id)|id(id+id)+id( sep3+id )"]
    spec = normalize_spec(_spec(first_conv=8, widths=[4], downsample=[], cells=cells))
    assert spec["cells"] == ["id(id+id)+id(id+id) | id(id+id)+id(sep3+id)"]
    assert cells == ["id(id+id)+id(id+id)|id(id+id)+id( sep3+id )"]  # the caller's list is not touched


@pytest.mark.parametrize("text, fix", [
    ("sep7(sep3d2+id)+max3(sep7+max3)", "expected a tree cell string"),  # one half only
    ("sep7(sep3d2+id+id)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7)", "expected a tree cell string"),
    ("sep7(sep3d2)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7)", "expected a tree cell string"),
    ("sep7(sep3d2+id)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7) | id(id+id)+id(id+id)",
     "expected a tree cell string"),
    ("sep7(sep3d2+id)+max3(sep7+max5) | sep5(sep5+sep5)+sep3d2(sep7+sep7)",
     "unknown op 'max5' (did you mean 'max3'?)"),
    ("sep7(dil3+id)+max3(sep7+max3) | sep5(sep5+sep5)+sep3d2(sep7+sep7)", "unknown op 'dil3'"),
    ("", "expected a tree cell string"),
])
def test_a_bad_cell_string_names_the_key_and_the_grammar(text, fix):
    with pytest.raises(SpecError) as err:
        parse_cell(text)
    assert f"tree cell string {text!r}" in str(err.value) and fix in str(err.value)
    with pytest.raises(SpecError) as err:
        build_model(_spec(first_conv=8, widths=[4, 4], downsample=[], cells=[FIRST, text]))
    message = str(err.value)
    assert message.startswith(f"key 'cells' entry 1 = {text!r} in spec: ") and fix in message
    assert GRAMMAR in message and message.count("\n") == 0


# The released net ------------------------------------------------------------------------------

def test_released_net_file_is_the_registered_variant():
    text = ARCH.read_text()
    assert text.startswith("# ProxylessNAS released net proxyless_cifar: han-cai/files "
                           "proxylessnas/proxyless_cifar.config")
    spec = yaml.safe_load(text)
    assert spec == normalize_spec(spec) == spec_for("proxyless-cifar")
    assert normalize_spec({"family": "pyramid-tree"}) == spec  # the defaults are proxyless_cifar
    assert natural_input(spec) == (3, 32, 32) and spec["num_classes"] == 10


def test_released_net_layout_matches_the_reference():
    """Reference §2: 54 blocks, 3 stages x 18, bottleneck widths 18 -> 100, out 4x (72 -> 400),
    downsampling at blocks 19 and 37 (from 1)."""
    spec = spec_for("proxyless-cifar")
    widths = spec["widths"]
    assert len(widths) == len(spec["cells"]) == 54 and spec["first_conv"] == 16
    assert (widths[0], widths[-1]) == (18, 100) and widths == sorted(widths)
    assert spec["downsample"] == [18, 36]
    # PyramidNet's linear growth, alpha 84, widths floored to even (observed on the config)
    assert widths == [2 * int((18 + 84 * i / 54) // 2) for i in range(54)]
    model = _released()
    assert [b.final_bn.num_features for b in model.blocks][::53] == [72, 400]
    assert model.classifier.in_features == 400 and model.classifier.out_features == 10


def test_released_net_params():
    """5,731,530: derived from proxyless_cifar.config by summing the shapes of its layers (every
    trainable parameter, BN gamma/beta and biases included); reference §2 gives 5.732M."""
    model = _released()
    assert count_params(model) == 5_731_530
    assert count_params(model) / 1e6 == pytest.approx(5.732, abs=0.0005)


def test_released_net_macs():
    """1,213,155,872 conv + linear MACs at 32x32 (the paper gives none): the count of the
    official `PyramidTreeNet.get_flops` on proxyless_cifar.config, which counts the same layers."""
    assert count_macs(_released(), (3, 32, 32)) == 1_213_155_872


def _token(op: nn.Module) -> str:
    if isinstance(op, nn.Identity):
        return "id"
    if isinstance(op, nn.MaxPool2d):
        return "max3"
    if isinstance(op, nn.AvgPool2d):
        return "avg3"
    depthwise = op[2]
    dilation = depthwise.dilation[0]
    return f"sep{depthwise.kernel_size[0]}" + (f"d{dilation}" if dilation > 1 else "")


def test_released_net_op_counts_match_the_reference():
    """Reference §2, over all cells: 7x7 dw-sep 116, 3x3 dilated-2 dw-sep 90, max-pool 89,
    avg-pool 89, 5x5 dw-sep 85, 3x3 dw-sep 83, identity 204 including the two identity edges of
    each cell's split node."""
    expected = {"sep7": 116, "sep3d2": 90, "max3": 89, "avg3": 89, "sep5": 85, "sep3": 83, "id": 204}
    model = _released()
    built: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, TreePath):
            for op in (module.op, *module.leaves):
                built[_token(op)] = built.get(_token(op), 0) + 1
        if isinstance(module, TreeHalf):  # the split node's identity edge into this half
            built["id"] = built.get("id", 0) + 1
    assert built == expected
    from_strings = op_counts(model.spec)
    from_strings["id"] += 2 * 54
    assert dict(from_strings) == expected


def test_released_net_runs_and_round_trips(tmp_path):
    model = _released()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    spec = model.to_spec()
    rebuilt = build_model(spec)
    _same_structure(model, rebuilt)
    assert rebuilt.to_spec() == spec
    _same_structure(model, build_model(ARCH))


def test_feature_map_sizes_and_strides():
    model = _released()
    sizes = []
    hooks = [b.register_forward_hook(lambda m, args, out: sizes.append(tuple(out.shape[1:]))) for b in model.blocks]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert sizes[17] == (176, 32, 32) and sizes[18] == (184, 16, 16)
    assert sizes[35] == (288, 16, 16) and sizes[36] == (296, 8, 8) and sizes[53] == (400, 8, 8)
    strided = [i for i, b in enumerate(model.blocks) if b.cell.root[2].stride == (2, 2)]
    assert strided == [18, 36]
    assert all(isinstance(b.shortcut, nn.AvgPool2d) == (i in strided) for i, b in enumerate(model.blocks))


# Counts of a small spec from first principles ---------------------------------------------------

SMALL = _spec(num_classes=5, first_conv=8, widths=[4, 6], downsample=[1],
              cells=["sep3(sep5+id)+max3(sep7+avg3) | id(sep3d2+sep3)+avg3(id+max3)",
                     "sep7(sep7+sep7)+sep3d2(sep5+sep5) | max3(max3+avg3)+sep3(id+sep3d2)"])


def _expected_params_and_macs(size: int) -> tuple[int, int]:
    """Pre-activation layers: every BN sits on the layer's input (2 parameters a channel)."""
    params = 3 * 8 * 9 + 2 * 8  # first conv, its BN
    macs = 3 * 8 * 9 * size**2
    cin = 8
    for (width, stride), text in zip([(4, 1), (6, 2)], SMALL["cells"]):
        out = size // stride
        ops = cell_ops(parse_cell(text))
        seps = [SEP_KERNEL[op] for op in ops if op in SEP_KERNEL]
        params += 2 * cin + cin * width  # in_bottle: BN, 1x1
        params += 2 * width + 9 * width * width  # root: BN, 3x3 conv w -> 2w in 2 groups
        params += 2 * (2 * width)  # the branch BN of each half
        params += sum(2 * width + k * k * width + width * width for k in seps)  # BN, depthwise, pointwise
        params += 2 * width + width * 4 * width + 2 * 4 * width  # out_bottle: BN, 1x1; final BN
        macs += cin * width * size**2 + 9 * width * width * out**2
        macs += sum(k * k * width + width * width for k in seps) * out**2 + width * 4 * width * out**2
        cin, size = 4 * width, out
    params += 2 * 24 + 24 * 5 + 5  # head BN, Linear with bias
    macs += 24 * 5
    return params, macs


@pytest.mark.parametrize("size", [32, 16])
def test_small_spec_counts_from_first_principles(size):
    model = build_model(SMALL)
    params, macs = _expected_params_and_macs(size)
    assert count_params(model) == params == 3_669  # also counted by hand
    assert count_macs(model, (3, size, size)) == macs
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, size, size)).shape == (2, 5)


# The tree cell's computation --------------------------------------------------------------------

def test_ops_are_pre_activation_and_width_preserving():
    sep = tree_op("sep3d2", 6)
    assert [type(m).__name__ for m in sep] == ["BatchNorm2d", "ReLU", "Conv2d", "Conv2d"]
    dw, pw = sep[2], sep[3]
    assert (dw.kernel_size, dw.dilation, dw.padding, dw.groups, dw.bias) == ((3, 3), (2, 2), (2, 2), 6, None)
    assert (pw.kernel_size, pw.in_channels, pw.out_channels, pw.groups, pw.bias) == ((1, 1), 6, 6, 1, None)
    x = torch.randn(1, 6, 9, 9)
    for token in ("sep3", "sep5", "sep7", "sep3d2", "max3", "avg3", "id"):
        assert tree_op(token, 6).eval()(x).shape == x.shape
    # the average pool leaves the padding out: a constant map stays constant, corners included
    assert torch.equal(tree_op("avg3", 2)(torch.full((1, 2, 5, 5), 3.0)), torch.full((1, 2, 5, 5), 3.0))


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_a_path_sums_its_leaves_and_a_half_adds_its_input():
    x = torch.randn(2, 4, 5, 5)
    path = TreePath(("max3", ("id", "id")), 4)
    assert torch.equal(path(x), 2 * nn.functional.max_pool2d(x, 3, 1, 1))
    half = TreeHalf((("id", ("id", "id")), ("id", ("id", "avg3"))), 4).eval()
    nn.init.constant_(half.bn.weight, 0.5)
    expected = x + 0.5 * (3 * x + nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)) / (1 + 1e-5) ** 0.5
    with torch.no_grad():
        torch.testing.assert_close(half(x), expected)


def test_the_cell_splits_the_shuffled_root_output_into_halves():
    cell = TreeCell(parse_cell("id(id+id)+id(id+id) | id(id+id)+id(id+id)"), 4, 2).eval()
    conv = cell.root[2]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.groups, conv.bias) == \
        (4, 8, (3, 3), (2, 2), 2, None)
    assert isinstance(cell.root[3], ChannelShuffle) and cell.root[3].groups == 2
    for half in cell.halves:  # silence the paths: each half returns its own input
        nn.init.zeros_(half.bn.weight)
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        y = cell.root(x)
        torch.testing.assert_close(cell(x), y[:, :4] + y[:, 4:])
        # the shuffle interleaves the two groups' outputs: half 0 gets channels 0, 4, 1, 5 of the conv
        z = conv(cell.root[1](cell.root[0](x)))
        torch.testing.assert_close(y[:, :4], z[:, [0, 4, 1, 5]])


def test_a_silenced_block_passes_its_zero_padded_shortcut():
    model = build_model(SMALL).eval()
    block = model.blocks[1]  # 32 -> 24 channels, stride 2
    nn.init.zeros_(block.final_bn.weight)
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (1, 24, 4, 4)
    torch.testing.assert_close(out[:, :16], nn.functional.avg_pool2d(x, 2))
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_bn_and_init_are_pytorch_defaults():
    """The config has no BN settings and the official code no initialisation for this net."""
    model = build_model(SMALL)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 and m.eps == 1e-5 for m in bns)
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs) and model.classifier.bias is not None


def test_other_inputs():
    model = build_model(SMALL, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 5)
        assert build_model(SMALL).eval()(torch.randn(1, 3, 33, 33)).shape == (1, 5)  # odd maps downsample too


# Bad specs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("keys, message", [
    ({"widths": [4, 5]}, "key 'widths' entry 1 = 5 in spec: expected a positive even width"),
    ({"widths": [6, 4]},
     "key 'widths' entry 1 = 4 in spec: the block's output 4 x width = 16 must be at least its input 24"),
    ({"first_conv": 20},
     "key 'widths' entry 0 = 4 in spec: the block's output 4 x width = 16 must be at least its input 20"),
    ({"widths": []}, "key 'widths' is empty in spec"),
    ({"downsample": [2]}, "key 'downsample' = [2] in spec: expected increasing block indices in 0..1"),
    ({"downsample": [1, 0]}, "key 'downsample' = [1, 0] in spec: expected increasing block indices"),
    ({"cells": [FIRST]}, "key 'cells' has 1 entries in spec: expected one cell per block: 2, as many as 'widths'"),
    ({"cells": [FIRST, 3]}, "key 'cells' entry 1 = 3 in spec: expected a list of strings"),
    ({"num_classes": 0}, "key 'num_classes' = 0 in spec: expected a positive integer"),
    ({"width": [4, 4]}, "unknown key 'width' for family 'pyramid-tree' (did you mean 'widths'?)"),
])
def test_bad_specs_name_the_key(keys, message):
    base = {"first_conv": 8, "widths": [4, 6], "downsample": [1], "cells": [FIRST, FIRST]}
    with pytest.raises(SpecError) as err:
        build_model(_spec(**{**base, **keys}))
    assert message in str(err.value)
