"""The cost of one search step against the bare training step of the same network, side by side.

- TAS: one alternating search step (128 weight-half + 128 architecture-half images, ResNet-20 and
  ResNet-56, the suite's memory format on this device) against one plain SGD step of the unpruned
  ResNet on 128 images in NCHW. Target (issue 13, reported, not asserted): <= 3.5x, where the
  official step costs 5.5x its bare step (two half-batches against one).
- AutoSlim: one sandwich step (largest, smallest, 2 random configurations, in-place distillation)
  of the slimmable MobileNetV2 against one plain SGD step of the same network at its full widths,
  at 32 px (MobileNetV2-CIFAR) and 224 px (MobileNetV2-ImageNet). Target: <= 2.5x at both sizes
  (official: 3.09x at 224 px, 2.75x at 32 px, of its own bare step). Beside them, the floor: one
  plain step of each of the same four configurations, built as separate networks.

- ProxylessNAS: on the default (mobile) space at 32 px (`stem: cifar`, batch 64) and at 224 px
  (batch 16, as issue 14's official measurement: full_v2 step 3.1x the bare step of proxyless_mobile): a weight step (one path per edge sampled from p) against a plain step of the same
  sampled net built as an `mbconv-chain` (target 1.2x: the single-path promise), and a `full_v2`
  architecture step (one path forward, every candidate re-run under no_grad in backward) against
  the same plain step (reported; the official step costs the same kind of extra forwards).

Each round times every variant once, interleaved in rotating order, so that the ratios compare
runs made seconds apart (these VMs drift by 10-30% over minutes); the ratio of the medians is
reported. Run with `make bench`, which also fixes the allocator.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from nas_impl.methods.autoslim.recipe import AutoSlimSettings
from nas_impl.methods.autoslim.space import ChannelSpace
from nas_impl.methods.autoslim.supernet import SlimmableNet, sandwich_configs, sandwich_step
from nas_impl.methods.memory_format import sliced_net_memory_format
from nas_impl.methods.proxylessnas.search import gradient_arch_step, weight_step
from nas_impl.methods.proxylessnas.search_net import ProxylessSuperNet
from nas_impl.methods.tas import TASResNet, band_macs, search_step
from nas_impl.models import build_model

ROUNDS = 6  # a multiple of the number of variants, so each leads equally often


def _interleaved(variants: dict[str, Callable[[], None]], rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds per variant over `rounds` interleaved rounds (after one warm-up round). The
    order rotates every round, so that no variant always runs right after the same other one (a
    step that follows one touching other memory runs measurably slower here)."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds + 1):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            variants[name]()
            if r:
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


def _plain_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _batch(n: int, size: int, classes: int, fmt=torch.contiguous_format) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=gen).contiguous(memory_format=fmt)
    return x, torch.randint(classes, (n,), generator=gen)


@pytest.mark.parametrize("depth", [20, 56])
def test_tas_search_step_against_the_bare_step(benchmark, depth, record_step_cost):
    torch.manual_seed(0)
    fmt = sliced_net_memory_format("cpu")
    net = TASResNet(depth).to(memory_format=fmt)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    train, valid = _batch(128, 32, 10, fmt), _batch(128, 32, 10, fmt)
    full = band_macs(net)
    variants = {
        "tas search step": lambda: search_step(net, w_opt, a_opt, train, valid, 2.0, 0.5 * full, 0.05 * full),
        "bare NCHW step": _plain_step(build_model(f"resnet{depth}-cifar"), *_batch(128, 32, 10)),
    }
    medians = benchmark.pedantic(lambda: _interleaved(variants), rounds=1, iterations=1)
    _report(benchmark, record_step_cost, f"TAS resnet{depth}-cifar", medians["tas search step"],
            medians["bare NCHW step"], 3.5)


@pytest.mark.parametrize("arch, size, batch", [("mobilenetv2-cifar", 32, 64), ("mobilenetv2-imagenet", 224, 8)])
def test_autoslim_sandwich_step_against_the_bare_step(benchmark, arch, size, batch, record_step_cost):
    torch.manual_seed(0)
    settings = AutoSlimSettings(targets=("0.5x",))
    classes = 10 if size == 32 else 1000
    space = ChannelSpace.for_search(build_model(arch).to_spec(), settings, (3, size, size))
    fmt = sliced_net_memory_format("cpu")
    model = SlimmableNet(space).to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-5)
    x, y = _batch(batch, size, classes, fmt)
    gen = torch.Generator().manual_seed(0)
    rounds = [sandwich_configs(space, 4, gen) for _ in range(ROUNDS + 1)]
    # The floor: the same four configurations as separate plain networks, one SGD step each. A
    # sandwich step cannot cost less than its configurations' own steps, so this ratio is the best
    # any slimmable implementation could reach on the drawn configurations.
    plain_rounds = [[_plain_step(build_model(space.spec_of(c)), x.contiguous(), y) for c in configs]
                    for configs in rounds]
    sandwich_rounds, floor_rounds = iter(rounds), iter(plain_rounds)

    def sandwich() -> None:
        sandwich_step(model, opt, (x, y), next(sandwich_rounds), inplace_distill=True)

    def floor() -> None:
        for step in next(floor_rounds):
            step()

    variants = {"sandwich step": sandwich, "bare NCHW step": _plain_step(build_model(space.spec), x.contiguous(), y),
                "plain steps of the same configurations": floor}
    medians = benchmark.pedantic(lambda: _interleaved(variants), rounds=1, iterations=1)
    _report(benchmark, record_step_cost, f"AutoSlim {arch} {size}px", medians["sandwich step"],
            medians["bare NCHW step"], 2.5, medians["plain steps of the same configurations"])


@pytest.mark.parametrize("stem, size, batch", [("cifar", 32, 64), ("imagenet", 224, 16)])
def test_proxyless_steps_against_the_sampled_nets_plain_step(benchmark, stem, size, batch, record_step_cost):
    torch.manual_seed(0)
    classes = 10 if size == 32 else 1000
    space = {**build_model("replications/proxylessnas/archs/space_mobile.yaml").to_spec(), "stem": stem,
             "num_classes": classes}
    net = ProxylessSuperNet(space).to(memory_format=torch.channels_last)
    w_opt = torch.optim.SGD(list(net.weight_parameters()), lr=0.025, momentum=0.9, nesterov=True, weight_decay=4e-5)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=1e-3, betas=(0.0, 0.999))
    x, y = _batch(batch, size, classes, torch.channels_last)
    # Every variant runs the same sampled net: the search steps resample, so fix the draw.
    indices = net.binarize()
    net.binarize = lambda generator=None: net.set_chosen(indices)
    derived = build_model({**net.derive_spec(indices), "dropout": 0.0}).to(memory_format=torch.channels_last)
    variants = {
        "weight step": lambda: weight_step(net, w_opt, (x, y)),
        "full_v2 arch step": lambda: gradient_arch_step(net, a_opt, (x, y), "full_v2"),
        "plain step of the sampled net": _plain_step(derived, x, y),
    }
    medians = benchmark.pedantic(lambda: _interleaved(variants, rounds=ROUNDS), rounds=1, iterations=1)
    bare = medians["plain step of the sampled net"]
    _report(benchmark, record_step_cost, f"ProxylessNAS weight step {size}px", medians["weight step"], bare, 1.2)
    record_step_cost(f"ProxylessNAS full_v2 arch step {size}px", medians["full_v2 arch step"], bare, float("nan"))


def _report(benchmark, record_step_cost, name: str, step_s: float, bare_s: float, target: float,
            floor_s: float | None = None) -> None:
    benchmark.extra_info.update(step_s=step_s, bare_s=bare_s, ratio=step_s / bare_s, target=target, floor_s=floor_s)
    record_step_cost(name, step_s, bare_s, target, floor_s)
