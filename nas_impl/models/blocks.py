"""Shared building blocks: conv-BN-activation, residual shortcuts, ResNet basic/bottleneck
blocks and the MobileNetV2 / MNasNet inverted residual.

Attribute names and the order of operations follow torchvision (`conv1`, `bn1`, `downsample`,
`conv`; the shortcut runs after the main branch and is added in place), so the default ImageNet
networks accept torchvision's state_dicts unchanged and hold the same tensors alive.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

Activation = Callable[..., nn.Module]


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
            act: Activation | None = nn.ReLU) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BN -> activation; keys 0, 1 (, 2)."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class PadShortcut(nn.Module):
    """He et al. (2016) option A: subsample by the stride, zero-pad the extra channels."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if cout < cin:
            raise ValueError(f"zero-padding shortcut cannot shrink {cin} -> {cout} channels")
        self.extra, self.stride = cout - cin, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra))


def make_shortcut(kind: str, cin: int, cout: int, stride: int, bn: bool = True) -> nn.Module | None:
    """The residual branch of a block; None means identity.

    kind 'A': zero-padding identity (no parameters).
    kind 'B': strided 1x1 conv + BN (torchvision).
    kind 'tas': 2x2 average pool when strided, then 1x1 conv, BN only if `bn`
    (TAS's inferred networks: `bn` is False for strided CIFAR blocks and CIFAR bottlenecks).
    """
    if stride == 1 and cin == cout:
        return None
    if kind == "A":
        return PadShortcut(cin, cout, stride)
    pool = kind == "tas" and stride > 1
    layers: list[nn.Module] = [nn.AvgPool2d(stride)] if pool else []
    layers.append(nn.Conv2d(cin, cout, 1, 1 if pool else stride, bias=False))
    if bn or kind == "B":
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """3x3 -> 3x3 residual block; `widths` = (mid, out)."""

    def __init__(self, cin: int, widths: list[int], stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        mid, cout = widths
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = shortcut

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 residual block; `widths` = (mid1, mid2, out)."""

    def __init__(self, cin: int, widths: list[int], stride: int, shortcut: nn.Module | None) -> None:
        super().__init__()
        mid1, mid2, cout = widths
        self.conv1 = nn.Conv2d(cin, mid1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid1)
        self.conv2 = nn.Conv2d(mid1, mid2, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid2)
        self.conv3 = nn.Conv2d(mid2, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> kxk depthwise -> 1x1 linear projection (+ identity
    when stride 1 and in == out). `kernel` (depthwise size, 3 in MobileNetV2, 3 or 5 in MNasNet)
    and `act` (ReLU6 in MobileNetV2, ReLU in MNasNet) generalise it; the defaults give
    MobileNetV2's block."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int, expand: bool,
                 kernel: int = 3, act: Activation = nn.ReLU6) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [conv_bn(cin, hidden, 1, act=act)] if expand else []
        layers += [
            conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def kaiming_init(model: nn.Module) -> None:
    """torchvision's initialisation: He-normal (fan-out) convs, BN = (1, 0), zero conv biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
