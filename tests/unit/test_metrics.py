"""Metric counters: MACs against closed-form counts, parameters, MemNAS-style memory on nets
with hand-computed answers, latency."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from nas_impl.metrics import (
    activation_memory,
    count_macs,
    count_params,
    measure_latency,
    model_metrics,
    param_bytes,
)
from nas_impl.models import build_model

# Closed-form MAC counts, written from the architecture definitions (not from the models) -----


def conv(cin: int, cout: int, k: int, hw: int, groups: int = 1) -> int:
    return cin // groups * cout * k * k * hw * hw


def resnet_cifar_macs(n: int, shortcut_convs: bool, classes: int = 10) -> int:
    """He et al. CIFAR ResNet, 6n+2 layers, widths 16/32/64 at 32/16/8 px."""
    total = conv(3, 16, 3, 32)
    cin = 16
    for w, hw in ((16, 32), (32, 16), (64, 8)):
        total += conv(cin, w, 3, hw) + (2 * n - 1) * conv(w, w, 3, hw)
        if cin != w and shortcut_convs:
            total += conv(cin, w, 1, hw)
        cin = w
    return total + 64 * classes


def resnet_imagenet_macs(bottleneck: bool, layers: list[int]) -> int:
    """torchvision ResNet at 224 px: 7x7/2 stem, max-pool to 56 px, four stages."""
    total, cin, hw = conv(3, 64, 7, 112), 64, 56
    for stage, (w, n) in enumerate(zip((64, 128, 256, 512), layers)):
        out = 4 * w if bottleneck else w
        for b in range(n):
            hw_out = hw // 2 if stage > 0 and b == 0 else hw
            if bottleneck:
                total += conv(cin, w, 1, hw) + conv(w, w, 3, hw_out) + conv(w, out, 1, hw_out)
            else:
                total += conv(cin, w, 3, hw_out) + conv(w, w, 3, hw_out)
            if cin != out or hw_out != hw:
                total += conv(cin, out, 1, hw_out)
            cin, hw = out, hw_out
    return total + cin * 1000


def mobilenet_v2_macs() -> int:
    """MobileNetV2 1.0 at 224 px (Sandler et al. Table 2)."""
    total, cin, hw = conv(3, 32, 3, 112), 32, 112
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            hidden, hw_out = cin * t, hw // (s if i == 0 else 1)
            if t != 1:
                total += conv(cin, hidden, 1, hw)
            total += conv(hidden, hidden, 3, hw_out, groups=hidden) + conv(hidden, c, 1, hw_out)
            cin, hw = c, hw_out
    return total + conv(320, 1280, 1, 7) + 1280 * 1000


@pytest.mark.parametrize("name, input_size, expected, approx", [
    ("resnet20-cifar", (3, 32, 32), resnet_cifar_macs(3, True), 40.81e6),
    ("resnet56-cifar", (3, 32, 32), resnet_cifar_macs(9, True), 125.75e6),
    ("mobilenetv2-imagenet", (3, 224, 224), mobilenet_v2_macs(), 300.77e6),
    ("resnet18-imagenet", (3, 224, 224), resnet_imagenet_macs(False, [2, 2, 2, 2]), 1.814e9),
    ("resnet50-imagenet", (3, 224, 224), resnet_imagenet_macs(True, [3, 4, 6, 3]), 4.089e9),
])
def test_count_macs_matches_closed_form(name, input_size, expected, approx):
    model = build_model(name)
    assert count_macs(model, input_size) == expected
    assert expected == pytest.approx(approx, rel=1e-3)


def test_count_macs_zero_padding_resnet():
    model = build_model({"family": "resnet-cifar", "depth": 20, "shortcut": "A"})
    assert count_macs(model) == resnet_cifar_macs(3, False) == 40_551_040


def test_count_macs_keeps_training_mode():
    model = build_model("resnet20-cifar").train()
    count_macs(model)
    assert model.training


def test_params():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Linear(8, 2))
    assert count_params(model) == 216 + 16 + 18
    assert count_params(model, exclude_norm=True) == 216 + 18
    assert param_bytes(model) == 4 * 250
    assert param_bytes(model.half()) == 2 * 250


# Memory -------------------------------------------------------------------------------------

def tiny_sequential(inplace: bool) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(8, 4, 1, bias=False),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


def test_memory_tiny_sequential_by_hand():
    # Input 3x8x8 fp32 = 768 B; conv1 out 8x8x8 = 2048 B; conv2 out 4x8x8 = 1024 B; logits 40 B.
    # conv1: input + its output = 2816; relu (out of place): 2048 + 2048 = 4096 (input is dead);
    # conv2: 2048 + 1024 = 3072; flatten is a view; linear: 1024 + 40 = 1064.  Peak 4096.
    result = activation_memory(tiny_sequential(inplace=False), (3, 8, 8))
    assert result["peak_activation_bytes"] == 4096
    assert result["input_bytes"] == 768
    assert result["param_bytes"] == 4 * (216 + 32 + 2560 + 10)
    assert result["total_bytes"] == result["param_bytes"] + 4096
    # In-place ReLU allocates nothing: the peak moves to conv2 (2048 + 1024).
    assert activation_memory(tiny_sequential(inplace=True), (3, 8, 8))["peak_activation_bytes"] == 3072
    # Batch 2 doubles, 2-byte dtypes halve.
    assert activation_memory(tiny_sequential(False), (3, 8, 8), batch_size=2)["peak_activation_bytes"] == 8192
    assert activation_memory(tiny_sequential(False), (3, 8, 8), dtype=torch.bfloat16)["peak_activation_bytes"] == 2048


class Residual(nn.Module):
    def __init__(self, skip: bool, keep_refs: bool = False) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.b = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.skip, self.keep_refs = skip, keep_refs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu_(self.a(x))
        b = self.b(a)
        if self.keep_refs:  # Python holds every tensor to the end; liveness must not change
            self.held = [x, a, b]
        return b + x if self.skip else b


def test_memory_counts_the_skip_tensor():
    s = 4 * 8 * 8 * 4  # one feature map, bytes
    # With the skip, x stays live through conv b: x + a + b = 3s; then x + b + sum = 3s.
    assert activation_memory(Residual(skip=True), (4, 8, 8))["peak_activation_bytes"] == 3 * s
    assert activation_memory(Residual(skip=False), (4, 8, 8))["peak_activation_bytes"] == 2 * s
    assert activation_memory(Residual(skip=False, keep_refs=True), (4, 8, 8))["peak_activation_bytes"] == 2 * s


def test_memory_bn_folding():
    model = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 2, 1, bias=False))
    # Folded: conv1 (768 + 2048), BN in place, conv2 (2048 + 512).  Eager: BN holds 2048 + 2048.
    assert activation_memory(model, (3, 8, 8))["peak_activation_bytes"] == 2816
    assert activation_memory(model, (3, 8, 8), fold_bn=False)["peak_activation_bytes"] == 4096


def test_memory_of_real_networks_is_deterministic():
    model = build_model("mobilenetv2-imagenet")
    first = activation_memory(model, (3, 224, 224))
    assert first == activation_memory(model, (3, 224, 224))
    # Peak of MobileNetV2 at 224 px: block 1's 96-channel expansion (112 px) + its depthwise output (56 px).
    assert first["peak_activation_bytes"] == 4 * 96 * (112 * 112 + 56 * 56)
    # ResNet-18: stem output (64 x 112^2) + max-pool output (64 x 56^2).
    assert activation_memory(build_model("resnet18-imagenet"), (3, 224, 224))["peak_activation_bytes"] == \
        4 * 64 * (112 * 112 + 56 * 56)


# Latency and summary --------------------------------------------------------------------------

def test_latency():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1)).train()
    result = measure_latency(model, (3, 16, 16), min_run_time=0.05)
    assert result["median_ms"] > 0 and result["iqr_ms"] >= 0 and result["runs"] >= 1
    assert result["device_name"] and result["device"] == "cpu"
    assert result["threads"] == torch.get_num_threads() and result["batch_size"] == 1
    assert model.training


def test_model_metrics():
    result = model_metrics(build_model("resnet20-cifar"), (3, 32, 32))
    assert result["params"] == 272_282
    assert result["macs"] == 40_813_184
    assert result["param_bytes"] == 4 * 272_282
    assert result["peak_activation_bytes"] == 3 * 16 * 32 * 32 * 4
    assert result["input_size"] == [3, 32, 32]


def test_memory_of_a_network_without_operators():
    assert activation_memory(nn.Identity(), (3, 4, 4))["peak_activation_bytes"] == 0
