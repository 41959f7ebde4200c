"""Model registry, specs and families: every variant builds, runs and round-trips; the released
TAS and AutoSlim shapes reproduce the papers' own counts; bad specs fail with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from nas_impl.errors import SpecError
from nas_impl.metrics import count_macs, count_params
from nas_impl.tasks import task_of
from nas_impl.models import (
    build_model,
    list_families,
    list_models,
    natural_input,
    load_spec,
    normalize_spec,
    save_spec,
    spec_for,
)


def _input_size(name: str) -> tuple[int, int, int]:
    return (3, 32, 32) if "cifar" in name else (3, 64, 64)


def _same_structure(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(sa[k].shape == sb[k].shape for k in sa)


def test_registry_contents():
    assert list_families() == ["dag-rnn-lm", "lstm-lm", "mbconv-chain", "memnas-cells", "mnasnet", "mobilenet-v1", "mobilenet-v2", "pyramid-tree", "resnet-cifar", "resnet-imagenet", "shrink-cnn", "wrn-cifar"]
    assert {"resnet20-cifar", "resnet164-cifar", "mobilenetv2-imagenet", "resnet50-imagenet", "proxyless-mobile",
            "proxyless-cifar"} <= set(list_models())
    assert list_models("resnet*-imagenet") == ["resnet18-imagenet", "resnet50-imagenet"]


@pytest.mark.parametrize("name", list_models())
def test_variant_builds_runs_and_round_trips(name, tmp_path):
    model = build_model(name).eval()
    spec = model.to_spec()
    assert spec == spec_for(name)
    with torch.no_grad():
        if task_of(model).name == "language-modelling":  # a window of token ids -> (batch, tokens, vocabulary)
            out, _ = model(torch.randint(spec["vocab_size"], (2, *natural_input(spec))))
            assert out.shape == (2, spec["seq_len"], spec["vocab_size"])
        else:
            out = model(torch.randn(2, *_input_size(name)))
            assert out.shape == (2, spec["num_classes"])
    _same_structure(model, build_model(spec))
    path = save_spec(model, tmp_path / "arch.yaml")
    assert load_spec(path) == spec
    _same_structure(model, build_model(path))
    assert [p.name for p in tmp_path.iterdir()] == ["arch.yaml"]  # no temporary file left


@pytest.mark.parametrize("name", ["resnet20-cifar", "resnet164-cifar", "mobilenetv2-cifar"])
def test_fashion_mnist_input(name):
    model = build_model(name, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_overrides_and_name_errors():
    assert build_model("resnet56-cifar", num_classes=100).fc.out_features == 100
    with pytest.raises(SpecError, match="unknown model 'resnet21-cifar' \\(did you mean"):
        build_model("resnet21-cifar")


# torchvision parity -----------------------------------------------------------------------

@pytest.mark.parametrize("name, factory, params", [
    ("resnet18-imagenet", "resnet18", 11_689_512),
    ("resnet50-imagenet", "resnet50", 25_557_032),
    ("mobilenetv2-imagenet", "mobilenet_v2", 3_504_872),
])
def test_torchvision_parity(name, factory, params):
    tv = pytest.importorskip("torchvision")
    reference = getattr(tv.models, factory)(weights=None).eval()
    model = build_model(name).eval()
    assert count_params(model) == count_params(reference) == params
    model.load_state_dict(reference.state_dict())  # same keys and shapes: torchvision weights load
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


# TAS released shapes (tas.md §2: configs/NeurIPS-2019/*.config) --------------------------------

# name: (depth, block, classes, xblocks, xchannels, [derived] MFLOPs, [derived] params in M)
TAS_CIFAR = {
    "C010-ResNet20": (20, "basic", 10, [3, 3, 3], "3,16,6,4,4,4,4,4,32,32,12,19,32,28,64,64,64,64,64,44", 22.459, 0.228),
    "C100-ResNet32": (32, "basic", 100, [5, 5, 5], "3,16,4,4,6,11,6,4,8,4,4,4,32,32,9,28,28,28,28,28,32,32,64,64,64,64,64,64,64,64,64,64", 42.485, 0.427),
    "C010-ResNet56": (56, "basic", 10, [5, 5, 5], "3,16,16,16,14,11,9,16,12,16,6,16,4,8,4,14,6,4,4,4,32,32,32,32,32,32,22,28,32,32,19,9,19,16,9,25,16,9,64,64,64,64,64,64,64,64,64,51,19,19,32,19,19,32,19,25", 59.886, 0.449),
    "C100-ResNet56": (56, "basic", 100, [5, 5, 7], "3,16,16,9,14,16,14,16,8,16,8,14,4,4,4,8,4,6,4,4,32,32,32,28,32,32,32,22,32,32,32,9,25,19,25,12,9,9,64,64,64,64,64,64,64,64,64,51,19,19,19,19,25,38,19,19", 61.258, 0.471),
    "C010-ResNet110": (110, "basic", 10, [11, 11, 9], "3,16,14,16,14,16,16,16,16,16,14,16,16,16,12,16,16,16,9,16,8,16,4,16,4,4,4,16,4,4,4,4,6,6,4,6,11,4,32,32,32,32,32,32,32,32,28,32,32,28,22,22,22,32,32,25,28,9,9,28,12,9,12,32,9,9,22,12,16,9,12,9,9,9,64,64,64,64,64,64,64,64,64,64,64,64,64,64,64,38,64,25,19,19,19,19,19,25,32,19,19,25,25,19,19,38,38,19,19,51", 119.284, 0.796),
    "C010-ResNet164": (164, "bottleneck", 10, [13, 15, 13], "3,16,8,16,64,6,16,64,14,16,64,8,16,64,4,16,64,6,16,64,6,16,64,11,11,64,4,14,64,4,4,57,4,16,64,9,12,57,4,16,64,4,8,57,6,6,51,6,4,44,6,4,57,6,6,19,32,32,128,32,32,128,32,32,128,9,32,128,32,32,128,25,28,115,12,32,128,32,32,128,32,32,128,32,32,102,28,32,128,16,32,128,28,19,128,32,9,51,16,12,102,12,22,115,9,12,51,12,16,38,64,64,256,64,64,256,64,64,256,64,64,256,64,64,256,64,64,256,64,64,256,64,64,256,64,64,256,64,64,256,64,57,204,64,25,179,19,25,204,44,19,153,38,25,76,19,32,128,19,51,76,57,32,76", 178.176, 1.278),
}


def _xchannels(text: str) -> list[int]:
    return [int(v) for v in text.split(",")][1:]  # drop the leading input entry (3)


def _pool_ops(model: nn.Module, input_size) -> int:
    """Average-pool operations as TAS / AutoSlim count them: C * H_out * W_out * k^2."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size if isinstance(module, nn.AvgPool2d) else inputs[0].shape[-1] // output.shape[-1]
        total += output[0].numel() * k * k

    pools = [m for m in model.modules() if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d))]
    handles = [m.register_forward_hook(hook) for m in pools]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_size))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("config", list(TAS_CIFAR))
def test_tas_cifar_shapes_match_derived_counts(config):
    depth, block, classes, xblocks, xchannels, mflops, mparams = TAS_CIFAR[config]
    model = build_model({"family": "resnet-cifar", "depth": depth, "block": block, "num_classes": classes,
                         "channels": _xchannels(xchannels), "blocks": xblocks})
    macs = count_macs(model, (3, 32, 32))
    # TAS's rule (tas.md §5): conv + FC MACs + FC bias + average pools.
    tas_flops = macs + classes + _pool_ops(model, (3, 32, 32))
    assert tas_flops / 1e6 == pytest.approx(mflops, rel=1e-4)
    assert macs / 1e6 == pytest.approx(mflops, rel=3e-3)
    assert round(count_params(model) / 1e6, 3) == mparams
    _same_structure(model, build_model(model.to_spec()))


@pytest.mark.parametrize("depth, block, mflops, mparams", [
    (20, "basic", 40.81, 0.27), (32, "basic", 69.12, 0.47), (56, "basic", 125.75, 0.86),
    (110, "basic", 253.15, 1.73), (164, "bottleneck", 247.65, 1.70),
])
def test_tas_baselines(depth, block, mflops, mparams):
    """docs/BASELINE.md of AutoDL-Projects (tas.md §1): conv + FC MACs + FC bias."""
    model = build_model({"family": "resnet-cifar", "depth": depth, "block": block})
    assert round((count_macs(model) + 10) / 1e6, 2) == mflops
    assert round(count_params(model) / 1e6, 2) == mparams


@pytest.mark.parametrize("depth, xblocks, xchannels, gmacs", [
    (18, [1, 1, 2, 2], "3,64,25,64,38,19,128,128,38,38,256,256,256,256,512,512,512,512", 1.21),
    (50, [3, 4, 5, 3], "3,45,45,30,102,33,60,154,68,70,180,38,38,307,38,38,410,64,128,358,38,51,256,76,76,512,"
     "76,76,512,179,256,614,100,102,307,179,230,614,204,102,307,153,153,1228,512,512,1434,512,512,1844", 2.31),
])
def test_tas_imagenet_shapes_match_paper_flops(depth, xblocks, xchannels, gmacs):
    """TAS Table 4: ResNet-18 1.21E9, ResNet-50 2.31E9 FLOPs (MACs)."""
    model = build_model({"family": "resnet-imagenet", "depth": depth, "channels": _xchannels(xchannels),
                         "blocks": xblocks, "shortcut": "tas", "zero_init_residual": True})
    assert round(count_macs(model, (3, 224, 224)) / 1e9, 2) == gmacs


def test_shortcut_a_is_he_et_al_resnet20():
    model = build_model({"family": "resnet-cifar", "depth": 20, "shortcut": "A"})
    assert count_macs(model) == 40_551_040  # 40.55M: no shortcut convs
    assert count_params(model) == 269_722  # the usual "0.27M" of He et al.'s ResNet-20


# AutoSlim released channel lists (autoslim.md §2) -------------------------------------------

AUTOSLIM_MBV2 = {  # target: (channel_num_list without the final 1000, [derived] MFLOPs, params in M)
    "207M": ("8,8,96,16,96,16,96,24,144,24,144,24,144,48,288,48,288,48,288,48,288,64,432,64,432,64,"
             "648,176,720,176,720,176,1440,280,1920", 206.9, 4.09),
    "305M": ("8,8,96,16,96,16,96,24,144,24,144,24,144,56,288,56,288,56,288,56,288,96,432,96,432,96,"
             "864,240,1440,240,960,240,1440,480,1920", 305.2, 5.73),
    "505M": ("32,16,144,24,176,24,192,48,240,48,144,48,264,88,288,88,336,88,432,88,576,144,576,144,"
             "648,144,864,240,1440,240,1440,240,1440,480,1920", 505.0, 6.45),
}


@pytest.mark.parametrize("target", list(AUTOSLIM_MBV2))
def test_autoslim_mobilenet_v2_lists(target):
    text, mflops, mparams = AUTOSLIM_MBV2[target]
    model = build_model({"family": "mobilenet-v2", "channels": [int(v) for v in text.split(",")]})
    # AutoSlim's profiler (autoslim.md §5): conv + FC MACs (no bias) + the final 7x7 average pool.
    flops = count_macs(model, (3, 224, 224)) + _pool_ops(model, (3, 224, 224))
    assert round(flops / 1e6, 1) == mflops
    assert round(count_params(model, exclude_norm=True) / 1e6, 2) == mparams  # conv + FC, no BN


def test_mobilenet_v2_default_channel_list_and_cifar_stem():
    full = build_model("mobilenetv2-imagenet")
    as_list = build_model({"family": "mobilenet-v2", "channels": [
        32, 16, 96, 24, 144, 24, 144, 32, 192, 32, 192, 32, 192, 64, 384, 64, 384, 64, 384, 64,
        384, 96, 576, 96, 576, 96, 576, 160, 960, 160, 960, 160, 960, 320, 1280]})
    _same_structure(full, as_list)
    cifar = build_model("mobilenetv2-cifar").eval()
    strides = [m.conv[-3][0].stride[0] for m in cifar.features[1:-1]]
    assert cifar.features[0][0].stride == (1, 1) and strides.count(2) == 3
    with torch.no_grad():
        assert cifar.features(torch.zeros(1, 3, 32, 32)).shape[-1] == 4


# Bad specs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ({"family": "resnt-cifar"},
     "unknown family 'resnt-cifar' (did you mean 'resnet-cifar'?) in spec: "
     "known families: dag-rnn-lm, lstm-lm, mbconv-chain, memnas-cells, mnasnet, mobilenet-v1, mobilenet-v2, pyramid-tree, resnet-cifar, resnet-imagenet, shrink-cnn, wrn-cifar"),
    ({"depth": 20}, "missing key 'family' in spec"),
    ({"family": "resnet-cifar", "dpth": 20},
     "unknown key 'dpth' for family 'resnet-cifar' (did you mean 'depth'?) in spec: "
     "allowed keys: family, depth, block,"),
    ({"family": "resnet-cifar", "depth": 21},
     "key 'depth' = 21 is invalid for block 'basic' in spec: expected depth with (depth - 2) % 6 == 0"),
    ({"family": "resnet-cifar", "depth": 164, "block": "bottleneck", "channels": [16] * 10},
     "key 'channels' has 10 entries in spec: expected 163 for depth 164 with bottleneck blocks"),
    ({"family": "resnet-cifar", "depth": 20, "blocks": [3, 4, 3]}, "key 'blocks' entry 1 = 4 in spec: expected 1..3"),
    ({"family": "resnet-cifar", "depth": "20"}, "key 'depth' = '20' in spec: expected an integer"),
    ({"family": "resnet-cifar", "block": "basik"},
     "key 'block' = 'basik' in spec: expected one of 'basic', 'bottleneck'"),
    ({"family": "resnet-cifar", "shortcut": "A",
      "channels": [16] + [16, 16] * 3 + [32, 32] * 3 + [64, 64] * 2 + [64, 32]},
     "shortcut 'A' cannot shrink 64 -> 32 channels (stage 3) in spec"),
    ({"family": "resnet-imagenet", "depth": 50, "block": "basic"},
     "key 'block' = 'basic' does not match depth 50 in spec: ResNet-50 uses block 'bottleneck'"),
    ({"family": "resnet-imagenet", "depth": 20}, "key 'depth' = 20 in spec: expected one of 18, 34, 50, 101, 152"),
    ({"family": "mobilenet-v2", "channels": [8] * 36}, "key 'channels' has 36 entries in spec: expected 35"),
    ({"family": "mobilenet-v2", "width_mult": 0.5, "channels": [8] * 35},
     "keys 'channels' and 'width_mult' both given"),
    ({"family": "mobilenet-v2", "num_classes": 0}, "key 'num_classes' = 0 in spec: expected a positive integer"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SpecError) as err:
        build_model(spec)
    assert message in str(err.value)


def test_bad_spec_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("family: resnet-cifar\ndepth: 22\n")
    with pytest.raises(SpecError, match=f"in spec \\(file {path}\\): expected depth"):
        build_model(path)
    with pytest.raises(SpecError, match="missing.yaml does not exist: check the path"):
        build_model(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="must hold a mapping"):
        (tmp_path / "list.yaml").write_text("- 1\n")
        load_spec(tmp_path / "list.yaml")


def test_normalize_spec_fills_defaults():
    spec = normalize_spec({"family": "mobilenet-v2", "width_mult": 1})
    assert spec == {"family": "mobilenet-v2", "num_classes": 1000, "in_channels": 3, "width_mult": 1.0,
                    "stem": "imagenet", "dropout": 0.2, "channels": None}
    assert normalize_spec({"family": "resnet-imagenet", "depth": 50})["block"] == "bottleneck"


def test_function_builder_family(monkeypatch):
    from dataclasses import dataclass

    from nas_impl.models import register_family, registry

    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))

    @dataclass
    class TinySpec:
        width: int = 4
        num_classes: int = 10

        def check(self) -> None:
            pass

    @register_family("tiny-mlp", spec=TinySpec)
    def tiny(spec: TinySpec) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(spec.width), nn.Linear(spec.width, spec.num_classes))

    model = build_model({"family": "tiny-mlp", "width": 8})
    assert model.to_spec() == {"family": "tiny-mlp", "width": 8, "num_classes": 10}
    with pytest.raises(SpecError, match="key 'channels' entry 2 = 'x' in spec: expected a list of integers or null"):
        build_model({"family": "resnet-cifar", "channels": [1, 2, "x"]})


def _reference_archs():
    from nas_impl.replication import load_replication

    root = Path(__file__).resolve().parents[2] / "replications"
    for manifest in sorted(root.glob("*/replication.yaml")):
        rep = load_replication(manifest.parent)
        for name, experiment in rep.experiments.items():
            if experiment.search is None:
                yield pytest.param(rep.arch_path(name), experiment.dataset, id=f"{rep.paper}-{name}")


@pytest.mark.parametrize("spec_path, dataset", list(_reference_archs()))
def test_a_spec_knows_the_input_of_its_papers_dataset(spec_path, dataset):
    """`nasrepro metrics SPEC` counts at the spec's own input: every reference arch's is the input of
    the dataset its experiment trains on (CIFAR 3x32x32, ImageNet 3x224x224, a language model's window)."""
    from nas_impl.models import natural_input, normalize_spec
    from nas_impl.tasks import task_for_dataset

    spec = normalize_spec(spec_path)
    assert natural_input(spec) == task_for_dataset(dataset).dataset_shape(dataset, spec)[1]


def test_metrics_of_an_imagenet_spec_count_at_224_without_flags(capsys):
    from nas_impl.cli import main

    spec = Path(__file__).resolve().parents[2] / "replications/baselines/archs/resnet50-imagenet.yaml"
    assert main(["metrics", str(spec), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["macs"] == 4_089_184_256 and out["input_size"] == [3, 224, 224]  # torchvision ResNet-50: 4.09G
