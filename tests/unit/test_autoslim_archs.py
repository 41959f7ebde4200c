"""AutoSlim's released channel configurations (replications/autoslim/archs) and the families
they need (mobilenet-v1, mnasnet, wrn-cifar): the files hold the released lists, and the built
networks measure the FLOPs and params of ../shared/reference/autoslim.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.metrics import count_macs, count_params
from nas_impl.models import build_model, list_models, spec_for

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ROOT / "replications/autoslim/archs"

# Source: autoslim.md §2 (JiahuiYu/slimmable_networks apps/autoslim_*_train_val.yml, key
# channel_num_list, final class count 1000 included) with its [derived] FLOPs (MFLOPs, to 0.1M);
# params (M) are the [derived] values of autoslim.md §1.1 (conv + FC weights and FC bias, no BN),
# given to 2 decimals (MobileNets, MNasNet) or 1 decimal (ResNet-50).
# name: (family, channel_num_list, [derived] MFLOPs, [derived] params in M)
RELEASED = {
    "mobilenet_v2-207M": ("mobilenet-v2", "8, 8, 96,16, 96,16, 96,24, 144,24, 144,24, 144,48, 288,48, 288,48, 288,48, "
                          "288,64, 432,64, 432,64, 648,176, 720,176, 720,176, 1440,280, 1920, 1000", 206.9, 4.09),
    "mobilenet_v2-305M": ("mobilenet-v2", "8, 8, 96,16, 96,16, 96,24, 144,24, 144,24, 144,56, 288,56, 288,56, 288,56, "
                          "288,96, 432,96, 432,96, 864,240, 1440,240, 960,240, 1440,480, 1920, 1000", 305.2, 5.73),
    "mobilenet_v2-505M": ("mobilenet-v2", "32, 16, 144,24, 176,24, 192,48, 240,48, 144,48, 264,88, 288,88, 336,88, "
                          "432,88, 576,144, 576,144, 648,144, 864,240, 1440,240, 1440,240, 1440,480, 1920, 1000",
                          505.0, 6.45),
    "mobilenet_v1-150M": ("mobilenet-v1", "16, 32, 48, 48, 88, 88, 224, 176, 224, 368, 320, 224, 744, 744, 1000",
                          149.9, 1.88),
    "mobilenet_v1-325M": ("mobilenet-v1", "16, 32, 48, 64, 112, 184, 320, 368, 320, 416, 464, 560, 1128, 1128, 1000",
                          324.8, 3.98),
    "mobilenet_v1-572M": ("mobilenet-v1", "24, 64, 128, 144, 232, 232, 560, 464, 512, 464, 560, 560, 1128, 1128, 1000",
                          572.1, 4.63),
    "mnasnet-217M": ("mnasnet", "16, 8, 24,16, 48,16, 24,16, 48,32, 48,32, 48,32, 192,56, 400,56, 400,56, 400,80, "
                     "432,80, 648,192, 864,192, 864,192, 864,192, 1728,280, 1280, 1000", 217.3, 4.00),
    "mnasnet-315M": ("mnasnet", "16, 8, 40,24, 48,24, 40,24, 48,40, 80,40, 48,40, 352,64, 400,64, 400,64, 464,80, "
                     "432,80, 792,288, 864,288, 864,288, 1008,288, 1728,360, 1920, 1000", 315.4, 6.04),
    "mnasnet-532M": ("mnasnet", "16, 8, 64,32, 56,32, 72,32, 104,64, 128,64, 96,64, 384,104, 528,104, 464,104, "
                     "720,128, 576,128, 864,288, 1584,288, 1728,288, 1728,288, 1728,480, 1920, 1000", 531.9, 8.29),
    "resnet50-570M": ("resnet-imagenet", "24, 72,8,16,72, 16,16,72, 8,8,72, 240,16,24,240, 16,24,240, 16,16,240, "
                      "16,24,240, 704,72,72,704, 48,72,704, 48,72,704, 72,72,704, 48,48,704, 48,48,704, "
                      "1680,280,240,1680, 120,200,1680, 280,280,1680, 1000", 570.1, 7.4),
    "resnet50-1000M": ("resnet-imagenet", "32, 72,16,16,72, 16,16,72, 8,8,72, 280,24,40,280, 16,24,280, 16,24,280, "
                       "24,40,280, 880,72,72,880, 72,96,880, 72,72,880, 72,72,880, 48,72,880, 168,96,880, "
                       "2016,360,280,2016, 320,360,2016, 480,440,2016, 1000", 999.9, 13.3),
    "resnet50-2000M": ("resnet-imagenet", "40, 120,16,16,120, 24,24,120, 16,24,120, 440,48,72,440, 32,48,440, "
                       "40,56,440, 64,72,440, 1024,168,168,1024, 96,144,1024, 120,168,1024, 120,144,1024, "
                       "120,144,1024, 256,256,1024, 2016,512,512,2016, 480,480,2016, 512,512,2016, 1000",
                       2006.1, 20.6),
    "resnet50-3000M": ("resnet-imagenet", "48, 192,16,16,192, 56,56,192, 24,40,192, 512,88,112,512, 64,104,512, "
                       "104,112,512, 80,128,512, 1024,240,216,1024, 144,216,1024, 192,192,1024, 144,240,1024, "
                       "240,256,1024, 256,256,1024, 2016,512,512,2016, 480,512,2016, 512,512,2016, 1000",
                       3004.6, 23.1),
}

BASELINES = {  # file: the registered variant it saves (resnet56-cifar with a conv shortcut)
    "mobilenet_v1-imagenet": spec_for("mobilenetv1-imagenet"),
    "mnasnet-imagenet": spec_for("mnasnet-imagenet"),
    "mobilenet_v2-imagenet": spec_for("mobilenetv2-imagenet"),
    "resnet50-imagenet": spec_for("resnet50-imagenet"),
    "mobilenet_v2-cifar": spec_for("mobilenetv2-cifar"),
    "resnet56-cifar": {**spec_for("resnet56-cifar"), "shortcut": "B"},
    "wrn40-4-cifar": spec_for("wrn40-4-cifar"),
    "mobilenet_v2-cifar-0.35x": {**spec_for("mobilenetv2-cifar"), "width_mult": 0.35},  # the CPU-sized search
}

NEW_VARIANTS = ["mobilenetv1-imagenet", "mobilenetv1-cifar", "mnasnet-imagenet", "wrn40-4-cifar"]


def _resnet_order(values: list[int]) -> list[int]:
    """AutoSlim's ResNet-50 order (per stage: first block [out (the projection width), mid1, mid2,
    out], other blocks [mid1, mid2, out]) -> this repo's [stem, (mid1, mid2, out) per block]."""
    out, pos = [values[0]], 1
    for depth in (3, 4, 6, 3):
        projection, first = values[pos], values[pos + 1 : pos + 4]
        assert projection == first[-1]
        out += first
        pos += 4
        for _ in range(depth - 1):
            out += values[pos : pos + 3]
            pos += 3
    assert pos == len(values)
    return out


def _same_structure(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(sa[k].shape == sb[k].shape for k in sa)


# The files ------------------------------------------------------------------------------------

def test_archs_folder_holds_exactly_the_released_configs_and_baselines():
    assert sorted(p.stem for p in ARCHS.glob("*.yaml")) == sorted([*RELEASED, *BASELINES])


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_file_holds_the_released_list(name):
    family, text, _, _ = RELEASED[name]
    path = ARCHS / f"{name}.yaml"
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# AutoSlim released config {name}: JiahuiYu/slimmable_networks apps/autoslim_")
    values = [int(v) for v in text.split(",")]
    assert values[-1] == 1000  # the class-count placeholder
    channels = _resnet_order(values[:-1]) if family == "resnet-imagenet" else values[:-1]
    spec = yaml.safe_load(path.read_text())
    expected = {"family": family, "channels": channels, **({"depth": 50} if family == "resnet-imagenet" else {})}
    # every other key is the family's ImageNet default
    assert spec == build_model(expected).to_spec()


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_file_is_the_registered_default(name):
    assert yaml.safe_load((ARCHS / f"{name}.yaml").read_text()) == BASELINES[name]


# Released configs: FLOPs and params ----------------------------------------------------------

@pytest.mark.parametrize("name", list(RELEASED))
def test_released_config_matches_derived_flops_and_params(name):
    _, _, mflops, mparams = RELEASED[name]
    model = build_model(ARCHS / f"{name}.yaml")
    macs = count_macs(model, (3, 224, 224))
    pool = model.to_spec()["channels"][-1] * 7 * 7  # the final 7x7 average pool: C * 7 * 7
    # autoslim.md §5 rule: conv + FC MACs + average pool, here also the FC bias (1000).
    assert abs((macs + pool + 1000) / 1e6 - mflops) <= 0.1
    # The official profiler (utils/model_profiling.py: Linear = in x out, no bias) rounds exactly.
    assert round((macs + pool) / 1e6, 1) == mflops
    decimals = 1 if name.startswith("resnet50") else 2
    assert round(count_params(model, exclude_norm=True) / 1e6, decimals) == mparams
    _same_structure(model, build_model(model.to_spec()))


# Released configs: on the grid of the super-network the replication searches ------------------

@pytest.mark.parametrize("name", list(RELEASED))
def test_released_config_lies_on_the_grid_of_its_super_network(name):
    """The ImageNet search of the released list's family, with the paper recipe as replication.yaml
    configures it (supernet_width, channel_step or divisions, width_min), can reach the list."""
    from nas_impl.methods.autoslim.space import ChannelSpace
    from nas_impl.replication.manifest import load_replication

    replication = load_replication(ROOT / "replications/autoslim")
    base = f"{name.rsplit('-', 1)[0]}-imagenet"
    (search,) = [s for s, entry in replication.searches.items() if entry.arch == base]
    settings = replication.search_recipe(search, "paper").autoslim
    space = ChannelSpace.for_search(yaml.safe_load((ARCHS / f"{base}.yaml").read_text()), settings, (3, 224, 224))
    released = yaml.safe_load((ARCHS / f"{name}.yaml").read_text())["channels"]
    assert len(released) == len(space.full)
    for group, widths in zip(space.groups, space.grids):
        values = sorted({released[i] for i in group})
        assert len(values) == 1 and values[0] in widths, \
            f"entries {group}: released {values}, grid {widths[:3]}...{widths[-1]} (full {space.full[group[0]]})"
    if name.startswith("mobilenet_v2"):
        assert released[-1] == space.full[-1] == 1920  # the last conv, never slimmed


# Default networks against independent counts -------------------------------------------------

def test_mnasnet_default_is_torchvision_mnasnet1_0():
    tv = pytest.importorskip("torchvision")
    reference = tv.models.mnasnet1_0(weights=None).eval()
    model = build_model("mnasnet-imagenet").eval()
    assert count_params(model) == count_params(reference)
    assert count_macs(model, (3, 224, 224)) == count_macs(reference, (3, 224, 224))
    assert round(count_macs(model, (3, 224, 224)) / 1e6) == 314  # MNasNet paper: 315M (B1) / 317M
    # Same layer order: torchvision's tensors, taken in order, load and give the same outputs.
    ours, theirs = model.state_dict(), reference.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    model.load_state_dict(dict(zip(ours, theirs.values())))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


def _paper_mobilenet_v1() -> nn.Sequential:
    """Howard et al. (2017) Table 1, written out layer by layer with plain torch modules."""
    table = [  # (type, stride, in, out): "conv" = full 3x3 conv, "dw" = 3x3 depthwise + 1x1 pointwise
        ("conv", 2, 3, 32), ("dw", 1, 32, 64), ("dw", 2, 64, 128), ("dw", 1, 128, 128), ("dw", 2, 128, 256),
        ("dw", 1, 256, 256), ("dw", 2, 256, 512), *[("dw", 1, 512, 512)] * 5, ("dw", 2, 512, 1024),
        ("dw", 1, 1024, 1024),  # Table 1 writes the last one as "s2", but its output stays 7x7
    ]
    layers: list[nn.Module] = []
    for kind, stride, cin, cout in table:
        if kind == "conv":
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        else:
            layers += [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                       nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000))


def test_mobilenet_v1_default_matches_the_paper_table():
    reference = _paper_mobilenet_v1()
    model = build_model("mobilenetv1-imagenet")
    # 4,231,976 = conv + FC (with bias) + BN gamma/beta, also the trainable count of Keras'
    # MobileNet 1.0 (its BN moving statistics are the 21,888 non-trainable ones).
    assert count_params(model) == count_params(reference) == 4_231_976
    assert count_macs(model, (3, 224, 224)) == count_macs(reference, (3, 224, 224))
    assert round(count_macs(model, (3, 224, 224)) / 1e6) == 569  # paper: 569M mult-adds
    assert round(count_params(model, exclude_norm=True) / 1e6, 1) == 4.2  # paper: 4.2M parameters


def _wrn_params(depth: int, k: int, classes: int = 10) -> int:
    """WRN-depth-k parameters written out: conv weights, BN gamma/beta, 1x1 shortcuts, FC."""
    n = (depth - 4) // 6
    total, cin = 3 * 16 * 9, 16
    for width in (16 * k, 32 * k, 64 * k):
        for b in range(n):
            total += 2 * cin + cin * width * 9 + 2 * width + width * width * 9  # bn1, conv1, bn2, conv2
            if cin != width:
                total += cin * width  # 1x1 shortcut
            cin = width
    return total + 2 * cin + cin * classes + classes  # final BN, FC


def test_wrn40_4_default():
    model = build_model("wrn40-4-cifar")
    assert count_params(model) == _wrn_params(40, 4) == 8_949_210
    assert round(count_params(model) / 1e6, 1) == 8.9  # Zagoruyko & Komodakis: WRN-40-4 8.9M
    assert round(count_macs(model, (3, 32, 32)) / 1e9, 2) == 1.30
    # stages at 32, 16, 8; one 1x1 shortcut conv per stage (widths 16 -> 64 -> 128 -> 256)
    shortcuts = [m.shortcut for m in model.modules() if hasattr(m, "shortcut") and m.shortcut is not None]
    assert [tuple(s.weight.shape[:2]) for s in shortcuts] == [(64, 16), (128, 64), (256, 128)]
    assert [s.stride[0] for s in shortcuts] == [1, 2, 2]
    with torch.no_grad():
        assert model.eval().block3(model.block2(model.block1(model.conv1(torch.zeros(1, 3, 32, 32))))).shape[-1] == 8


def test_cifar_stems_downsample_32_to_4():
    for model in (build_model("mobilenetv1-cifar"), build_model("mnasnet-imagenet", stem="cifar", num_classes=10)):
        with torch.no_grad():
            assert model.eval().features(torch.zeros(1, 3, 32, 32)).shape[-1] == 4


@pytest.mark.parametrize("width, mflops", [(1.0, 569), (0.75, 325), (0.5, 150), (0.25, 41)])
def test_mobilenet_v1_width_mult_matches_s_mobilenet_v1(width, mflops):
    """autoslim.md §1.1: S-MobileNet v1 FLOPs in the official README (conv + FC + 7x7 pool)."""
    model = build_model({"family": "mobilenet-v1", "width_mult": width})
    pool = model.classifier[-1].in_features * 7 * 7
    assert round((count_macs(model, (3, 224, 224)) + pool) / 1e6) == mflops


def test_mnasnet_width_mult_keeps_the_last_conv():
    mnas = build_model({"family": "mnasnet", "width_mult": 0.5}).to_spec()
    assert build_model(mnas).classifier[-1].in_features == 1280  # the last conv stays 1280


def test_inverted_residual_generalisation_keeps_mobilenet_v2():
    from nas_impl.models.blocks import InvertedResidual

    block = InvertedResidual(16, 96, 24, 2, expand=True)
    assert [type(m).__name__ for m in block.conv[0]] == ["Conv2d", "BatchNorm2d", "ReLU6"]
    assert block.conv[1][0].kernel_size == (3, 3)
    wide = InvertedResidual(16, 96, 16, 1, expand=True, kernel=5, act=nn.ReLU)
    assert wide.conv[1][0].kernel_size == (5, 5) and wide.conv[1][0].padding == (2, 2)
    assert isinstance(wide.conv[1][2], nn.ReLU) and wide.use_res_connect
    assert list(block.state_dict()) == list(wide.state_dict())


# Round trips and bad specs --------------------------------------------------------------------

@pytest.mark.parametrize("name", NEW_VARIANTS)
def test_new_variant_round_trips(name):
    assert name in list_models()
    model = build_model(name)
    _same_structure(model, build_model(model.to_spec()))


@pytest.mark.parametrize("spec, message", [
    ({"family": "mobilenet-v1", "channels": [8] * 15},
     "key 'channels' has 15 entries in spec: expected 14: stem out, then the outputs of the 13"),
    ({"family": "mobilenet-v1", "width_mult": 0.5, "channels": [8] * 14},
     "keys 'channels' and 'width_mult' both given"),
    ({"family": "mnasnet", "channels": [8] * 34}, "key 'channels' has 34 entries in spec: expected 35: stem out"),
    ({"family": "wrn-cifar", "channels": [16] * 10},
     "key 'channels' has 10 entries in spec: expected 37 for depth 40: stem out, then (mid, out) for each of the 18"),
    ({"family": "wrn-cifar", "depth": 28, "widen": 10, "channels": [16] * 25},
     "keys 'channels' and 'widen' both given"),
    ({"family": "wrn-cifar", "depth": 41}, "key 'depth' = 41 in spec: expected depth with (depth - 4) % 6 == 0"),
    ({"family": "wrn-cifar", "channels": [16] * 36 + [0]}, "key 'channels' entry 36 = 0 in spec"),
    ({"family": "mnasnet", "dropout": 1.0}, "key 'dropout' = 1.0 in spec: expected 0 <= dropout < 1"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SpecError) as err:
        build_model(spec)
    assert message in str(err.value)
