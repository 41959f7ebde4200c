"""Family `mbconv-chain` (ProxylessNAS networks): block strings, the four released ImageNet nets
against ../shared/reference/proxylessnas.md §2, block shapes, residuals, zero blocks, the CIFAR
stem, initialisation and bad specs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.metrics import count_macs, count_params
from nas_impl.models import build_model, natural_input, normalize_spec, spec_for
from nas_impl.models.mbconv_chain import (RELEASED, BlockChoice, BlockPosition, block_positions, format_block,
                                          head_shapes, mbconv_block, parse_block)

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ROOT / "replications/proxylessnas/archs"

# file stem -> (registered variant, [derived] MACs in M (1 decimal), [derived] params in M (2 decimals)):
# reference §2 table, counted by the §5 rule (conv + linear MACs; every trainable parameter).
RELEASED_NETS = {
    "proxyless_gpu": ("proxyless-gpu", 465.3, 7.12),
    "proxyless_cpu": ("proxyless-cpu", 439.2, 4.36),
    "proxyless_mobile": ("proxyless-mobile", 320.4, 4.08),
    "proxyless_mobile_14": ("proxyless-mobile-14", 580.9, 6.86),
}
# Zero (skipped) blocks per net, reference §2.
ZERO_BLOCKS = {
    "proxyless_gpu": [2, 3, 4, 6, 7, 10, 11, 14],
    "proxyless_cpu": [10, 11],
    "proxyless_mobile": [3, 4],
    "proxyless_mobile_14": [3, 4],
}

_MODELS: dict[str, nn.Module] = {}


def _released(stem: str) -> nn.Module:
    if stem not in _MODELS:
        _MODELS[stem] = build_model(ARCHS / f"{stem}.yaml").eval()
    return _MODELS[stem]


def _spec(**keys):
    return {"family": "mbconv-chain", **keys}


# Block strings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, choice", [
    ("e3_k5_c32_s2", BlockChoice(expand=3, kernel=5, out=32, stride=2)),
    ("e1_k3_c16_s1", BlockChoice(1, 3, 16, 1)),
    ("e6_k7_c432_s1", BlockChoice(6, 7, 432, 1)),
    ("zero", None),
])
def test_parse_and_format_are_inverse(text, choice):
    assert parse_block(text) == choice
    assert format_block(choice) == text


def test_every_released_block_string_round_trips():
    for spec in RELEASED.values():
        for text in spec["blocks"]:
            assert format_block(parse_block(text)) == text


def test_block_choice_is_frozen():
    with pytest.raises(AttributeError):
        BlockChoice(3, 5, 32, 2).kernel = 7


@pytest.mark.parametrize("text, fix", [
    ("e3_k4_c32_s1", "kernel 4 must be odd"),
    ("e0_k3_c32_s1", "expand 0 must be at least 1"),
    ("e3_k3_c32_s3", "stride 3 must be 1 or 2"),
    ("e3_k3_c0_s1", "out channels 0 must be at least 1"),
    ("e03_k3_c32_s1", "write it as 'e3_k3_c32_s1'"),
    ("e3_k3_c32", "expected a block string 'e{expand}_k{kernel}_c{out}_s{stride}'"),
    ("E3_K3_C32_S1", "expected a block string"),
    ("Zero", "(write a skipped block as 'zero')"),
    ("zer0", "(did you mean 'zero'?)"),
    ("skip", "(write a skipped block as 'zero')"),
    ("", "expected a block string"),
])
def test_bad_block_strings(text, fix):
    with pytest.raises(SpecError) as err:
        parse_block(text)
    assert f"block string {text!r}" in str(err.value) and fix in str(err.value)
    # in a spec, one message names the key, the block index and the string
    blocks = ["e1_k3_c16_s1", "e3_k5_c32_s2", text]
    with pytest.raises(SpecError) as err:
        build_model(_spec(blocks=blocks))
    message = str(err.value)
    assert message.startswith(f"key 'blocks' entry 2 = {text!r} in spec: ") and fix in message
    assert message.count("\n") == 0


# The released nets -------------------------------------------------------------------------------

@pytest.mark.parametrize("stem", sorted(RELEASED_NETS))
def test_released_net_file_is_canonical_and_round_trips(stem):
    path = ARCHS / f"{stem}.yaml"
    assert path.read_text().startswith(f"# ProxylessNAS released net {stem}: han-cai/files proxylessnas/{stem}.config")
    spec = yaml.safe_load(path.read_text())
    assert spec == normalize_spec(spec)
    assert spec == spec_for(RELEASED_NETS[stem][0])  # the registered variant is the same net
    assert spec["num_classes"] == 1000 and natural_input(spec) == (3, 224, 224)
    assert len(spec["blocks"]) == 22 and spec["blocks"][0].startswith("e1_k3_")
    assert [i for i, b in enumerate(spec["blocks"]) if b == "zero"] == ZERO_BLOCKS[stem]
    model = _released(stem)
    assert model.to_spec() == spec
    rebuilt = build_model(model.to_spec())
    a, b = model.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    assert rebuilt.to_spec() == spec


def _analytic_macs(spec) -> int:
    """Reference §5's recount from the shapes alone: expand 1x1 at the input size, depthwise and
    projection at the output size, first conv, feature mix, FC."""
    heads = head_shapes(spec)
    fc, fm = heads.first_conv, heads.feature_mix
    total = 9 * fc.cin * fc.cout * fc.out_size**2 + fm.cin * fm.cout * fm.out_size**2
    total += heads.classifier_in * heads.num_classes
    for pos, text in zip(block_positions(spec), spec["blocks"]):
        choice = parse_block(text)
        if choice is None:
            continue
        hidden = pos.cin * choice.expand
        expand = pos.cin * hidden * pos.in_size**2 if choice.expand != 1 else 0
        total += expand + hidden * choice.kernel**2 * pos.out_size**2 + hidden * pos.cout * pos.out_size**2
    return total


@pytest.mark.parametrize("stem", sorted(RELEASED_NETS))
def test_released_net_macs_and_params_match_the_reference(stem):
    _, mmacs, mparams = RELEASED_NETS[stem]
    model = _released(stem)
    macs = count_macs(model, (3, 224, 224))
    assert round(macs / 1e6, 1) == mmacs
    assert macs == _analytic_macs(model.to_spec())  # the counter agrees with the §5 rule
    assert round(count_params(model) / 1e6, 2) == mparams


@pytest.mark.parametrize("stem", sorted(RELEASED_NETS))
def test_released_net_ends_at_7x7(stem):
    spec = _released(stem).to_spec()
    assert block_positions(spec, 224)[-1].out_size == 7 and head_shapes(spec, 224).final_size == 7
    strided = [p.index for p in block_positions(spec) if p.stride == 2]
    assert strided == [1, 5, 9, 17]  # 224 / 2 (first conv) / 2**4 = 7


def test_block_positions_match_the_feature_maps_of_a_224_input():
    model = _released("proxyless_mobile")
    seen = []
    hooks = [b.register_forward_hook(lambda m, args, out: seen.append((tuple(args[0].shape), tuple(out.shape))))
             for b in model.blocks]
    mix = []
    hooks.append(model.feature_mix.register_forward_hook(lambda m, args, out: mix.append(tuple(out.shape))))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    assert out.shape == (1, 1000)
    positions = block_positions(model.to_spec(), 224)
    assert seen == [((1, p.cin, p.in_size, p.in_size), (1, p.cout, p.out_size, p.out_size))
                    for p in positions]
    assert mix == [(1, 1280, 7, 7)]
    heads = head_shapes(model.to_spec())
    assert (heads.first_conv.cin, heads.first_conv.cout, heads.first_conv.stride, heads.first_conv.out_size) == \
        (3, 32, 2, 112)
    assert (heads.feature_mix.cin, heads.feature_mix.cout, heads.classifier_in) == (320, 1280, 1280)


def test_block_positions_of_the_mobile_net():
    positions = block_positions("proxyless-mobile", 224)
    assert positions[0] == BlockPosition(0, 32, 16, 1, 112, 112, False)
    assert positions[1] == BlockPosition(1, 16, 32, 2, 112, 56, False)
    assert positions[2] == BlockPosition(2, 32, 32, 1, 56, 56, True)
    assert positions[3] == BlockPosition(3, 32, 32, 1, 56, 56, False)  # zero: cout = cin, no residual
    assert positions[21] == BlockPosition(21, 192, 320, 1, 7, 7, False)
    with pytest.raises(AttributeError):
        positions[0].cin = 3


def test_block_positions_accept_every_form_of_spec():
    expected = block_positions("proxyless-cpu")
    spec = spec_for("proxyless-cpu")
    model = _released("proxyless_cpu")
    assert block_positions(spec) == expected
    assert block_positions(model) == expected
    assert block_positions(model.spec) == expected
    assert block_positions(ARCHS / "proxyless_cpu.yaml") == expected
    assert block_positions(spec, 64)[-1].out_size == 2
    with pytest.raises(SpecError, match="need a 'mbconv-chain' spec, not one of family 'mobilenet-v2'"):
        block_positions("mobilenetv2-imagenet")


# Blocks ------------------------------------------------------------------------------------------

def test_zero_block_is_the_identity():
    model = _released("proxyless_gpu")
    block = model.blocks[2]
    assert isinstance(block, nn.Identity) and not list(block.parameters())
    x = torch.randn(1, 32, 8, 8)
    assert block(x) is x
    # a net of only a fixed block and zero blocks is the net without the zero blocks
    torch.manual_seed(0)
    with_zero = build_model(_spec(first_conv=8, blocks=["e1_k3_c8_s1", "zero", "zero"], feature_mix=None))
    torch.manual_seed(0)
    without = build_model(_spec(first_conv=8, blocks=["e1_k3_c8_s1"], feature_mix=None))
    without.load_state_dict(with_zero.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(with_zero.eval()(x), without.eval()(x))


def test_residual_only_at_stride_1_with_equal_widths():
    for stem in RELEASED_NETS:
        model = _released(stem)
        for pos, block in zip(block_positions(model.to_spec()), model.blocks):
            assert pos.residual == (pos.stride == 1 and pos.cin == pos.cout and not isinstance(block, nn.Identity))
            assert getattr(block, "use_res_connect", False) == pos.residual
    spec = _spec(first_conv=16, blocks=["e1_k3_c16_s1", "e3_k3_c16_s1", "e3_k3_c24_s1", "e3_k3_c24_s2"],
                 feature_mix=None)
    assert [p.residual for p in block_positions(spec, 32)] == [True, True, False, False]
    # a residual block returns its input when its branch is silenced (last BN scale 0)
    block = mbconv_block(16, 16, 5, 3, 1).eval()
    nn.init.zeros_(block.conv[-1].weight)
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), x)


def test_mbconv_block_layout_bn_and_init():
    block = mbconv_block(40, 80, 7, 6, 2)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0], c.groups) for c in convs] == \
        [(40, 240, 1, 1, 0, 1), (240, 240, 7, 2, 3, 240), (240, 80, 1, 1, 0, 1)]
    assert all(c.bias is None for c in convs)
    assert [type(m).__name__ for m in block.modules() if isinstance(m, (nn.ReLU6, nn.ReLU))] == ["ReLU6", "ReLU6"]
    assert all(m.momentum == 0.1 and m.eps == 1e-3 for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    assert not block.use_res_connect
    e1 = mbconv_block(32, 16, 3, 1, 1)  # expand 1: no expansion conv, depthwise on the input width
    assert [(c.in_channels, c.out_channels, c.groups) for c in e1.modules() if isinstance(c, nn.Conv2d)] == \
        [(32, 32, 32), (32, 16, 1)]
    with pytest.raises(SpecError, match="kernel 4 must be odd"):
        mbconv_block(32, 32, 4, 3, 1)
    with pytest.raises(SpecError, match="stride 3 must be 1 or 2"):
        mbconv_block(32, 32, 3, 3, 3)


def test_init_is_official_he_fout():
    torch.manual_seed(0)
    model = _released("proxyless_mobile_14")
    mix = model.feature_mix[0]  # 1x1 448 -> 1792: std sqrt(2 / 1792)
    assert mix.weight.std().item() == pytest.approx(math.sqrt(2 / 1792), rel=0.02)
    dw = model.blocks[21].conv[1][0]  # 7x7 depthwise, 1536 channels: fan-out 49 * 1536, groups not divided out
    assert dw.groups == dw.out_channels == 1536
    assert dw.weight.std().item() == pytest.approx(math.sqrt(2 / (49 * 1536)), rel=0.02)
    fc = model.classifier[1]
    assert fc.weight.abs().max().item() <= 1 / math.sqrt(1792) and torch.count_nonzero(fc.bias) == 0
    assert fc.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 1792), rel=0.02)  # U(+-b): std b / sqrt(3)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 and m.eps == 1e-3 for m in bns)
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.3


# Stems, heads ------------------------------------------------------------------------------------

def test_cifar_stem_runs_on_32x32():
    spec = {**spec_for("proxyless-mobile"), "stem": "cifar", "num_classes": 10}
    model = build_model(spec).eval()
    assert natural_input(spec) == (3, 32, 32)
    assert model.first_conv[0].stride == (1, 1)
    positions = block_positions(spec)
    assert positions[1].stride == 1  # the first stride-2 block runs at stride 1, as mobilenet-v2's CIFAR stem
    assert [p.stride for p in positions].count(2) == 3 and positions[-1].out_size == 4
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert build_model(model.to_spec()).to_spec() == model.to_spec()


def test_without_feature_mix_and_defaults():
    spec = _spec(first_conv=16, blocks=["e1_k3_c8_s1", "e6_k5_c24_s2", "zero"], feature_mix=None,
                 num_classes=7, in_channels=1)
    model = build_model(spec).eval()
    assert model.feature_mix is None and model.classifier[1].in_features == 24
    assert head_shapes(spec, 28).feature_mix is None and head_shapes(spec, 28).final_size == 7
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    assert build_model(model.to_spec()).to_spec() == normalize_spec(spec)
    # the defaults are the released proxyless_mobile with dropout 0
    assert normalize_spec({"family": "mbconv-chain"}) == {**spec_for("proxyless-mobile"), "dropout": 0.0}


# Bad specs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("keys, message", [
    ({"blocks": ["e1_k3_c16_s1", "e3_k6_c32_s2"]},
     "key 'blocks' entry 1 = 'e3_k6_c32_s2' in spec: kernel 6 must be odd"),
    ({"blocks": ["e0_k3_c16_s1"]}, "key 'blocks' entry 0 = 'e0_k3_c16_s1' in spec: expand 0 must be at least 1"),
    ({"blocks": ["e1_k3_c16_s1", "e3_k3_c32_s3"]},
     "key 'blocks' entry 1 = 'e3_k3_c32_s3' in spec: stride 3 must be 1 or 2"),
    ({"blocks": []}, "key 'blocks' is empty in spec: expected a list of block strings"),
    ({"blocks": ["e1_k3_c16_s1", 3]}, "key 'blocks' entry 1 = 3 in spec: expected a list of strings"),
    ({"blocks": "e1_k3_c16_s1"}, "key 'blocks' = 'e1_k3_c16_s1' in spec: expected a list of strings"),
    ({"first_conv": 0}, "key 'first_conv' = 0 in spec: expected a positive integer"),
    ({"feature_mix": 0}, "key 'feature_mix' = 0 in spec: expected a positive integer"),
    ({"feature_mix": 1280.0}, "key 'feature_mix' = 1280.0 in spec: expected an integer or null"),
    ({"dropout": 1.0}, "key 'dropout' = 1.0 in spec: expected 0 <= dropout < 1"),
    ({"num_classes": 0}, "key 'num_classes' = 0 in spec: expected a positive integer"),
    ({"stem": "cifar10"}, "key 'stem' = 'cifar10' in spec: expected one of 'imagenet', 'cifar'"),
    ({"feature_mixx": 1280}, "unknown key 'feature_mixx' for family 'mbconv-chain' (did you mean 'feature_mix'?)"),
])
def test_bad_specs_name_the_key(keys, message):
    with pytest.raises(SpecError) as err:
        build_model(_spec(**keys))
    assert message in str(err.value)


def test_bad_spec_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("family: mbconv-chain\nblocks: [e1_k3_c16_s1, e3_k4_c32_s2]\n")
    with pytest.raises(SpecError, match=rf"key 'blocks' entry 1 = 'e3_k4_c32_s2' in spec \(file {path}\): kernel 4"):
        build_model(path)
