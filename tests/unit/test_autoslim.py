"""AutoSlim: slimmable layers, the channel space, BN recalibration, sandwich training and greedy slimming."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from nas_impl.errors import NasReproError, SpecError
from nas_impl.methods import get_method
from nas_impl.methods.autoslim.greedy import greedy_slim, slimmed
from nas_impl.methods.autoslim.recipe import search_recipe_from_dict
from nas_impl.methods.autoslim.slimmable import (SlimBatchNorm2d, SlimConv2d, SlimLinear, batch_statistics,
                                                 make_slimmable, recalibrate_bn)
from nas_impl.methods.autoslim.space import ChannelSpace, grid, residual_groups, widen
from nas_impl.methods.autoslim.supernet import SlimmableNet, sandwich_configs, sandwich_step
from nas_impl.metrics import count_macs
from nas_impl.models import build_model, normalize_spec


def _small_mbv2() -> dict:
    return normalize_spec("mobilenetv2-cifar", width_mult=0.25)


@pytest.fixture(scope="module")
def mbv2_space() -> ChannelSpace:
    return ChannelSpace(widen(_small_mbv2(), 1.5), divisions=4, width_min=0.25, input_size=(3, 16, 16))


# -- slimmable layers == plain layers built with the first w channels ------------------------------
@pytest.mark.parametrize("cin, cout, groups", [(8, 12, 1), (12, 12, 12)])
def test_slim_conv_at_width_equals_plain_conv_of_first_channels(cin, cout, groups):
    torch.manual_seed(0)
    slim = make_slimmable(nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, groups=groups, bias=True)))[0]
    assert isinstance(slim, SlimConv2d)
    w_in = 5 if groups == 1 else 7
    w_out = 9 if groups == 1 else 7
    slim.active_out = w_out
    plain = nn.Conv2d(w_in, w_out, 3, 1, 1, groups=1 if groups == 1 else w_in, bias=True)
    with torch.no_grad():
        plain.weight.copy_(slim.weight[:w_out, : plain.weight.shape[1]])
        plain.bias.copy_(slim.bias[:w_out])
    x = torch.randn(2, w_in, 6, 6)
    torch.testing.assert_close(slim(x), plain(x), rtol=0, atol=0)


@pytest.mark.parametrize("training", [True, False])
def test_slim_batchnorm_at_width_equals_plain_batchnorm_of_first_channels(training):
    torch.manual_seed(0)
    slim = make_slimmable(nn.Sequential(nn.BatchNorm2d(10)))[0]
    assert isinstance(slim, SlimBatchNorm2d)
    with torch.no_grad():
        slim.weight.uniform_(0.5, 1.5), slim.bias.uniform_(-1, 1)
        slim.running_mean.uniform_(-1, 1), slim.running_var.uniform_(0.5, 2)
    plain = nn.BatchNorm2d(6)
    plain.load_state_dict({k: (v[:6] if v.dim() else v) for k, v in slim.state_dict().items()})
    slim.train(training), plain.train(training)
    x = torch.randn(4, 6, 5, 5)
    torch.testing.assert_close(slim(x), plain(x))
    # a training step updates the first 6 running statistics exactly as the plain layer's, the rest not at all
    torch.testing.assert_close(slim.running_mean[:6], plain.running_mean)
    untouched = slim.running_mean[6:].clone()
    slim(x)
    torch.testing.assert_close(slim.running_mean[6:], untouched)


def test_slim_linear_follows_its_input():
    torch.manual_seed(0)
    slim = make_slimmable(nn.Sequential(nn.Linear(10, 3)))[0]
    assert isinstance(slim, SlimLinear)
    x = torch.randn(2, 4)
    torch.testing.assert_close(slim(x), x @ slim.weight[:, :4].T + slim.bias)


def test_make_slimmable_keeps_state_dict_and_full_width_outputs():
    torch.manual_seed(0)
    plain = build_model(_small_mbv2()).eval()
    slim = make_slimmable(copy.deepcopy(plain)).eval()
    assert list(plain.state_dict()) == list(slim.state_dict())
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(slim(x), plain(x))


# -- the super-network at a configuration == the plain network of that channel list ----------------
@pytest.mark.parametrize("spec", [
    normalize_spec("mobilenetv2-cifar", width_mult=0.25),
    normalize_spec("resnet20-cifar", shortcut="B"),
    normalize_spec("mobilenetv1-cifar", width_mult=0.25),
    normalize_spec({"family": "wrn-cifar", "depth": 10, "widen": 1}),
])
def test_supernet_at_a_configuration_equals_the_plain_network_with_the_first_channels(spec):
    space = ChannelSpace(widen(spec, 1.5), divisions=4, width_min=0.25, input_size=(3, 16, 16))
    torch.manual_seed(0)
    model = SlimmableNet(space).eval()
    config = space.random(torch.Generator().manual_seed(3))
    model.set_config(config)
    plain = build_model(space.spec_of(config)).eval()
    # copy the first channels of every super-network tensor into the plain network
    slim_state = model.net.state_dict()
    plain.load_state_dict({k: slim_state[k][tuple(slice(0, n) for n in v.shape)] if v.dim() else slim_state[k]
                           for k, v in plain.state_dict().items()})
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)


def test_residual_groups_tie_exactly_the_entries_identity_shortcuts_add():
    groups = residual_groups(normalize_spec("resnet20-cifar", shortcut="B"))
    # stem + stage-1 outputs (identity from the stem), stage 2 outputs, stage 3 outputs; mids alone
    assert [0, 2, 4, 6] in groups and [8, 10, 12] in groups and [14, 16, 18] in groups
    assert sum(len(g) for g in groups) == 19 and len(groups) == 3 + 9
    mbv2 = residual_groups(normalize_spec("mobilenetv2-imagenet"))
    assert [1] in mbv2 and [3, 5] in mbv2  # block 0 alone (16 vs stem 32); stage 1 outputs tied


def _group_of(space: ChannelSpace, entry: int) -> int:
    return next(k for k, group in enumerate(space.groups) if entry in group)


def test_grid_steps_down_by_channel_step_from_the_full_width_above_the_minimum():
    assert grid(64, 0.1) == [8, 16, 24, 32, 40, 48, 56, 64]  # floor 6.4: down to one step
    assert grid(64, 0.15) == [16, 24, 32, 40, 48, 56, 64]  # floor 9.6
    assert grid(44, 0.1) == [12, 20, 28, 36, 44]  # counted from the full width, as slimming() subtracts
    assert grid(12, 0.15) == [4, 12]
    assert grid(8, 0.15) == [8]
    assert grid(30, 0.1, channel_step=4) == [6, 10, 14, 18, 22, 26, 30]


def test_grid_with_divisions_is_the_papers_equal_groups_above_the_minimum():
    assert grid(40, 0.15, divisions=10) == [8, 12, 16, 20, 24, 28, 32, 36, 40]
    assert grid(16, 0.25, divisions=4) == [4, 8, 12, 16]
    assert grid(96, 0.15, channel_step=8, divisions=10) == [20, 29, 39, 48, 58, 68, 77, 87, 96]


@pytest.mark.parametrize("keys, grid24, grid96", [
    ({}, [8, 16, 24], [16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96]),  # 8 channels a step, down to >= 0.15 full
    ({"divisions": 10}, [5, 8, 10, 12, 15, 17, 20, 22, 24], [20, 29, 39, 48, 58, 68, 77, 87, 96]),  # ceil(full k / 10)
    ({"channel_step": 16}, [8, 24], [16, 32, 48, 64, 80, 96]),
])
def test_the_search_recipe_picks_the_grid(keys, grid24, grid96):
    settings = search_recipe_from_dict({"epochs": 1, "targets": ["0.5x"], **keys}).autoslim
    space = ChannelSpace.for_search(normalize_spec("resnet20-cifar", shortcut="B"), settings)
    # 1.5x ResNet-20: stem 24, stages of 24, 48 and 96 channels; each stage's outputs are one group
    assert space.full[0] == 24 and space.full[-1] == 96
    assert space.grids[_group_of(space, 0)] == grid24 and space.grids[_group_of(space, len(space.full) - 1)] == grid96


def test_mobilenet_v2_keeps_its_last_conv_at_full_width():
    """As the official US-MobileNetV2 (its last conv is built with us=[True, False]): one width only."""
    space = ChannelSpace(widen(normalize_spec("mobilenetv2-imagenet"), 1.5), input_size=(3, 224, 224))
    assert space.groups[_group_of(space, 34)] == [34] and space.grids[_group_of(space, 34)] == [1920]
    configs = [space.largest(), space.smallest(), space.random(torch.Generator().manual_seed(0))]
    assert all(space.channels(c)[-1] == 1920 for c in configs)
    assert space.grids[0] == [8, 16, 24, 32, 40, 48]  # the stem (48 at 1.5x) is searched
    # MNasNet and MobileNetV1 (whose released lists vary there) keep their last conv searchable
    for name in ("mnasnet-imagenet", "mobilenetv1-imagenet"):
        other = ChannelSpace(widen(normalize_spec(name), 1.5), input_size=(3, 224, 224))
        assert len(other.grids[_group_of(other, len(other.full) - 1)]) > 1


def test_widen_builds_mobile_networks_at_the_wider_width_mult():
    """An expansion is t times the rounded block input, as a US-Net at width_mult 1.5 builds it."""
    mnas = widen(normalize_spec("mnasnet-imagenet"), 1.5)["channels"]
    assert mnas[13:15] == [64, 384]  # block 6 out: 40 x 1.5 -> 64; block 7 expands 6 x 64 (not 240 x 1.5 = 360)
    mbv2 = widen(normalize_spec("mobilenetv2-imagenet"), 1.5)["channels"]
    assert mbv2[3:5] == [40, 240] and mbv2[-1] == 1920  # 24 x 1.5 = 36 -> 40, expanded 6 x 40; 1280 x 1.5
    assert widen(normalize_spec("resnet20-cifar", shortcut="B"), 1.5)["channels"][:2] == [24, 24]


def test_zero_padding_shortcuts_are_refused():
    with pytest.raises(NasReproError, match="shortcut: B"):
        ChannelSpace(normalize_spec("resnet20-cifar", shortcut="A"))


# -- BN recalibration ------------------------------------------------------------------------------
def test_bn_recalibration_changes_only_bn_buffers(mbv2_space):
    torch.manual_seed(0)
    model = SlimmableNet(mbv2_space)
    model.set_config(mbv2_space.random(torch.Generator().manual_seed(1)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    used = recalibrate_bn(model, [torch.randn(8, 3, 16, 16) * 3 + 1 for _ in range(3)])
    assert used == 3
    after = model.state_dict()
    bn_buffers = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "recalibration changed nothing"
    assert all(k.rsplit(".", 1)[0] in bn_buffers and k.rsplit(".", 1)[1] in
               ("running_mean", "running_var", "num_batches_tracked") for k in changed)
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters())


def test_bn_recalibration_is_the_cumulative_average_of_batch_statistics():
    bn = make_slimmable(nn.Sequential(nn.BatchNorm2d(3)))
    batches = [torch.randn(16, 3, 4, 4) + i for i in range(3)]
    recalibrate_bn(bn, batches)
    expected = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(bn[0].running_mean, expected)


def test_batch_statistics_leaves_running_statistics_untouched(mbv2_space):
    model = SlimmableNet(mbv2_space)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with batch_statistics(model):
        model(torch.randn(4, 3, 16, 16))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.training  # mode restored


# -- sandwich rule ---------------------------------------------------------------------------------
def test_sandwich_configs_are_largest_smallest_then_random(mbv2_space):
    configs = sandwich_configs(mbv2_space, 4, torch.Generator().manual_seed(0))
    assert configs[0] == mbv2_space.largest() and configs[1] == mbv2_space.smallest() and len(configs) == 4


@pytest.mark.parametrize("distill", [True, False])
def test_sandwich_step_accumulates_every_configuration_into_one_update(mbv2_space, distill):
    torch.manual_seed(0)
    model = SlimmableNet(mbv2_space)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = (torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,)))
    configs = sandwich_configs(mbv2_space, 3, torch.Generator().manual_seed(0))
    # the same gradients, summed by hand
    reference = copy.deepcopy(model)
    logits = []
    for i, config in enumerate(configs):
        reference.set_config(config)
        out = reference(batch[0])
        if i > 0 and distill:
            soft = torch.softmax(logits[0].detach(), 1)
            loss = -(soft * torch.log_softmax(out, 1)).sum(1).mean()
        else:
            loss = nn.functional.cross_entropy(out, batch[1])
        logits.append(out)
        loss.backward()
    expected = {k: p.detach() - 0.1 * p.grad for k, p in reference.named_parameters() if p.grad is not None}
    out = sandwich_step(model, opt, batch, configs, inplace_distill=distill)
    assert set(out) == {"loss_largest", "top1_largest", "loss_smallest", "top1_smallest"}
    for k, p in model.named_parameters():
        if k in expected:
            torch.testing.assert_close(p.detach(), expected[k], rtol=1e-5, atol=1e-6)


# -- greedy slimming -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet_space() -> ChannelSpace:
    """ResNet-8 (one basic block per stage): 7 groups, a few dozen greedy steps in all."""
    return ChannelSpace(widen(normalize_spec("resnet20-cifar", depth=8, shortcut="B"), 1.5), divisions=4,
                        width_min=0.25, input_size=(3, 8, 8))


def _trained_enough(space: ChannelSpace) -> tuple[SlimmableNet, list]:
    torch.manual_seed(0)
    model = SlimmableNet(space)
    batches = [(torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))) for _ in range(2)]
    return model, batches


def test_one_greedy_step_removes_one_width_step_from_one_group_and_lowers_macs(resnet_space):
    model, batches = _trained_enough(resnet_space)
    full = resnet_space.macs(resnet_space.largest())
    result = greedy_slim(model, batches, [("t", full - 1)])
    first = result.steps[0]
    assert len(result.steps) == 1 and first["macs"] < full
    config = result.found[0].config
    differs = [g for g, (a, b) in enumerate(zip(resnet_space.largest(), config)) if a != b]
    assert differs == [first["group"]] and config[first["group"]] == resnet_space.largest()[first["group"]] - 1
    channels, before = resnet_space.channels(config), resnet_space.channels(resnet_space.largest())
    changed = [i for i, (a, b) in enumerate(zip(before, channels)) if a != b]
    assert changed == resnet_space.groups[first["group"]]


def test_slimming_path_is_monotone_and_stops_at_each_target_within_one_step(resnet_space):
    model, batches = _trained_enough(resnet_space)
    full = resnet_space.macs(resnet_space.largest())
    targets = [("0.7", 0.7 * full), ("0.4", 0.4 * full)]
    result = greedy_slim(model, batches, targets)
    macs = [full] + [row["macs"] for row in result.steps]
    assert all(b < a for a, b in zip(macs, macs[1:]))
    assert [f.target for f in result.found] == ["0.7", "0.4"]
    for found, (_, target) in zip(result.found, targets):
        assert found.macs <= target < found.previous_macs
        assert found.macs == resnet_space.macs(found.config) == count_macs(build_model(resnet_space.spec_of(found.config)),
                                                                         (3, 8, 8))
    assert result.found[-1].step == len(result.steps)  # stops at the last target


def test_greedy_slimming_names_an_unreachable_target(resnet_space):
    model, batches = _trained_enough(resnet_space)
    with pytest.raises(NasReproError, match="width_min"):
        greedy_slim(model, batches, [("tiny", 1.0)])


def test_found_configurations_build_and_round_trip(mbv2_space):
    config = slimmed(slimmed(mbv2_space.largest(), 0), 3)
    spec = mbv2_space.spec_of(config)
    model = build_model(spec)
    assert normalize_spec(model.to_spec()) == spec
    assert build_model(model.to_spec()).to_spec() == model.to_spec()


# -- recipes and the method interface --------------------------------------------------------------
def test_search_recipe_validates_targets_and_keys():
    recipe = search_recipe_from_dict({"epochs": 1, "targets": ["0.5x", "305M", "3G"]})
    assert recipe.targets == ("0.5x", "305M", "3G") and recipe.autoslim.supernet_width == 1.5
    with pytest.raises(SpecError, match="'50%' is not a MACs target"):
        search_recipe_from_dict({"epochs": 1, "targets": ["50%"]})
    with pytest.raises(SpecError, match="'targets' is required"):
        search_recipe_from_dict({"epochs": 1})
    with pytest.raises(SpecError, match=r"unknown search recipe key\(s\) \['divison'\]"):
        search_recipe_from_dict({"epochs": 1, "targets": ["0.5x"], "divison": 10})
    settings = recipe.autoslim
    assert (settings.channel_step, settings.divisions) == (8, None)  # the official step by default
    with pytest.raises(SpecError, match="'channel_step' = 0: must be a positive integer"):
        search_recipe_from_dict({"epochs": 1, "targets": ["0.5x"], "channel_step": 0})
    with pytest.raises(SpecError, match="'divisions' = 1: must be an integer of at least 2, or null"):
        search_recipe_from_dict({"epochs": 1, "targets": ["0.5x"], "divisions": 1})
    with pytest.raises(SpecError, match="'channel_step' = 8.5: must be an integer"):
        search_recipe_from_dict({"epochs": 1, "targets": ["0.5x"], "channel_step": 8.5})


def test_autoslim_is_registered_with_two_stages():
    method = get_method("autoslim")
    assert method.info.stage_names == ("supernet", "slim") and get_method("tas").info.stage_names == ("search",)


def test_imagenet_folders_split_into_supernet_and_scored_held_out_images(tmp_path, monkeypatch):
    from nas_impl import data
    from nas_impl.methods.autoslim.data import slim_data
    from tests.unit.test_data_imagenet import CLASSES, write_tree

    write_tree(tmp_path, train_per_class=10, val_per_class=1)
    real = data.load_imagenet
    monkeypatch.setattr(data, "load_imagenet", lambda root: real(root, num_classes=3, train_images=30, val_images=3))
    recipe = search_recipe_from_dict({"epochs": 1, "batch_size": 4, "targets": ["305M"], "holdout": 0.2,
                                      "slim_images": 3, "slim_batch_size": 3})
    found = slim_data("imagenet", recipe, seed=0, device=torch.device("cpu"), data_root=tmp_path)
    sizes = found.record["slim_split"]["sizes"]
    assert sizes == {"supernet": 24, "held_out": 6, "scored": 3}
    assert len(found.train_loader) == 6  # 24 images, batch 4
    (x, y), = found.held_out
    assert x.shape == (3, 3, 224, 224) and sorted(y.tolist()) == [0, 1, 2]  # one per class
    assert found.num_classes == 1000 and len(CLASSES) == 3


class _Oracle(nn.Module):
    """A stand-in network whose held-out accuracy is known for every configuration: each width step
    removed from group g costs `cost[g]` of the N held-out images (their predictions turn wrong)."""

    def __init__(self, space: ChannelSpace, cost: list[int]) -> None:
        super().__init__()
        self.space, self.cost, self.config = space, cost, space.largest()

    def set_config(self, config) -> None:
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wrong = sum(c * (full - k) for c, full, k in zip(self.cost, self.space.largest(), self.config))
        labels = x[:, 0].long()  # the images carry their labels; the first `wrong` are predicted wrong
        predicted = torch.where(torch.arange(len(x)) < wrong, (labels + 1) % 10, labels)
        return torch.nn.functional.one_hot(predicted, 10).float()


def test_greedy_slimming_removes_the_step_that_costs_the_least_accuracy(resnet_space):
    """The cheapest group is shrunk first, to its last width, then the next cheapest, and so on: the
    answer is known by construction (a slimmer that always shrinks group 0 fails here)."""
    groups = len(resnet_space.largest())
    cost = [3 + 2 * ((g * 5 + 3) % groups) for g in range(groups)]  # distinct costs, group 0 not the cheapest
    assert min(range(groups), key=cost.__getitem__) != 0
    n = 2 * sum(c * k for c, k in zip(cost, resnet_space.largest()))
    labels = torch.arange(n) % 10
    batches = [(labels.float()[:, None].expand(n, 3).clone(), labels)]
    oracle = _Oracle(resnet_space, cost)
    smallest = resnet_space.macs(resnet_space.smallest())
    result = greedy_slim(oracle, batches, [("all", smallest)])
    expected = [g for g in sorted(range(groups), key=cost.__getitem__) for _ in range(resnet_space.largest()[g])]
    assert [row["group"] for row in result.steps] == expected
    wrong = 0
    for row in result.steps:  # the recorded accuracy is the oracle's
        wrong += cost[row["group"]]
        assert row["held_out_top1"] == pytest.approx(100.0 * (n - wrong) / n)


def test_greedy_slimming_never_slims_a_fixed_last_conv(mbv2_space):
    """Slimming MobileNetV2's last conv would cost nothing here, yet the first step slims the
    cheapest searched group instead."""
    last = _group_of(mbv2_space, len(mbv2_space.full) - 1)
    assert mbv2_space.largest()[last] == mbv2_space.smallest()[last] == 0
    cost = [0 if g == last else 2 + g % 3 for g in range(len(mbv2_space.groups))]
    cost[1] = 1
    n = 2 * sum(c * k for c, k in zip(cost, mbv2_space.largest()))
    labels = torch.arange(n) % 10
    result = greedy_slim(_Oracle(mbv2_space, cost), [(labels.float()[:, None].expand(n, 3).clone(), labels)],
                         [("one step", mbv2_space.macs(mbv2_space.largest()) - 1)])
    assert [row["group"] for row in result.steps] == [1]
    assert mbv2_space.channels(result.found[0].config)[-1] == mbv2_space.full[-1]
