"""Family `mbconv-chain`: a chain of MBConv (mobile inverted residual) blocks, the networks
ProxylessNAS (Cai et al. 2019) searches and releases.

Network: 3x3 first conv (`first_conv` channels, stride 2) + BN + ReLU6 -> the `blocks`, in order
-> optional 1x1 feature-mix conv (`feature_mix` channels) + BN + ReLU6 -> global average pool ->
dropout -> Linear (with bias). Convs have no bias; every BN has momentum 0.1 and eps 1e-3, as
the official networks (`proxyless_nets.py`, `build_from_config` / `set_bn_param`).

Blocks are compact strings, one per block:

- `e{expand}_k{kernel}_c{out}_s{stride}`, e.g. `e3_k5_c32_s2`: an MBConv. [1x1 expand conv to
  round(in x expand) channels + BN + ReLU6, omitted when expand = 1] -> kxk depthwise conv
  (stride s, padding k // 2) + BN + ReLU6 -> 1x1 projection to `out` + BN; the input is added
  (identity residual) when the block runs at stride 1 and in = out. expand >= 1, kernel odd,
  out >= 1, stride 1 or 2.
- `zero`: a skipped block (ProxylessNAS's Zero op): output = input, so its width is its input
  width and its stride is 1; it has no parameters and no residual.

`stem: imagenet` (natural input 224x224) runs as written: the released nets downsample 5 times,
224 -> 7. `stem: cifar` (natural input 32x32) follows `mobilenet-v2`'s CIFAR stem: the first
conv at stride 1 and the first block written with stride 2 also at stride 1, so the released
layouts downsample 3 times, 32 -> 4 (a block that then runs at stride 1 with in = out gets its
residual, as in `mobilenet-v2`). `block_positions` reports the strides blocks actually run at.

Defaults are the released `proxyless_mobile` (ProxylessNAS-R, mobile setting); the four
released ImageNet nets are the variants `proxyless-gpu`, `proxyless-cpu`, `proxyless-mobile`,
`proxyless-mobile-14` (also `replications/proxylessnas/archs/*.yaml`), with the per-model
dropout of the official retraining commands (search/README.md; the released configs say 0).

Initialisation follows the official training code (`search/utils/my_modules.py`
`MyNetwork.init_model`, called by `RunManager.__init__` with the default `--model_init he_fout`
and no `--init_div_groups`): conv weights N(0, sqrt(2 / (k * k * out_channels))) (groups not
divided out, so a depthwise conv gets the same fan-out as a dense one), BN weight 1 and bias 0,
Linear weight U(-1/sqrt(in), 1/sqrt(in)) and bias 0.

Counting (../shared/reference/proxylessnas.md §5): MACs of convs and the Linear only, a Zero
block 0, params all of them (BN and Linear bias included), which is what `count_macs` and
`count_params` do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from nas_impl.errors import SpecError
from nas_impl.models.blocks import InvertedResidual, conv_bn
from nas_impl.models.registry import SpecModel, normalize_spec, parse_spec, register_family, register_model
from nas_impl.models.spec import (CIFAR_SIZE, IMAGENET_SIZE, SpecProblem, did_you_mean, require,
                                  require_positive)

FAMILY = "mbconv-chain"
BN_MOMENTUM = 0.1
BN_EPS = 1e-3
ZERO = "zero"
GRAMMAR = "'e{expand}_k{kernel}_c{out}_s{stride}' (e.g. 'e3_k5_c32_s2') or 'zero'"
STRIDES = (1, 2)


# Block strings -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockChoice:
    """One MBConv block: expansion ratio, depthwise kernel, output channels, stride."""

    expand: int
    kernel: int
    out: int
    stride: int


_BLOCK_RE = re.compile(r"e(\d+)_k(\d+)_c(\d+)_s(\d+)")


def _block_problem(text: Any) -> tuple[BlockChoice | None, str]:
    """(parsed block, '') or (None, what is wrong and how to write it)."""
    if not isinstance(text, str):
        return None, f"expected a block string {GRAMMAR}"
    if text == ZERO:
        return None, ""
    match = _BLOCK_RE.fullmatch(text)
    if match is None:
        skip = text.strip().lower() in ("zero", "skip", "skipped", "none", "identity")
        hint = " (write a skipped block as 'zero')" if skip else did_you_mean(text, [ZERO])
        return None, f"expected a block string {GRAMMAR}{hint}"
    expand, kernel, out, stride = (int(g) for g in match.groups())
    if expand < 1:
        return None, f"expand {expand} must be at least 1 (e1 = no expansion conv)"
    if kernel % 2 == 0:
        return None, f"kernel {kernel} must be odd (3, 5, 7, ...) for 'same' padding k // 2"
    if out < 1:
        return None, f"out channels {out} must be at least 1"
    if stride not in STRIDES:
        return None, f"stride {stride} must be 1 or 2"
    choice = BlockChoice(expand, kernel, out, stride)
    if format_block(choice) != text:
        return None, f"write it as '{format_block(choice)}' (no leading zeros)"
    return choice, ""


def parse_block(text: str) -> BlockChoice | None:
    """`'e3_k5_c32_s2'` -> BlockChoice(3, 5, 32, 2); `'zero'` -> None. A malformed string
    raises SpecError naming it and the grammar."""
    choice, problem = _block_problem(text)
    if problem:
        raise SpecProblem(f"block string {text!r}", problem)
    return choice


def format_block(choice: BlockChoice | None) -> str:
    """The inverse of `parse_block`: None -> `'zero'`."""
    if choice is None:
        return ZERO
    return f"e{choice.expand}_k{choice.kernel}_c{choice.out}_s{choice.stride}"


# The released ImageNet nets ------------------------------------------------------------------
# han-cai/files proxylessnas/proxyless_{gpu,cpu,mobile,mobile_14}.config, block by block as
# tabulated in ../shared/reference/proxylessnas.md §2 (Zero rows -> "zero").

_Z = ZERO
RELEASED: dict[str, dict[str, Any]] = {
    "proxyless-gpu": dict(first_conv=40, feature_mix=1728, dropout=0.3, blocks=[
        "e1_k3_c24_s1", "e3_k5_c32_s2", _Z, _Z, _Z, "e3_k7_c56_s2", _Z, _Z, "e3_k3_c56_s1",
        "e6_k7_c112_s2", _Z, _Z, "e3_k5_c112_s1", "e6_k5_c128_s1", _Z, "e3_k3_c128_s1", "e3_k5_c128_s1",
        "e6_k7_c256_s2", "e6_k7_c256_s1", "e6_k7_c256_s1", "e6_k5_c256_s1", "e6_k7_c432_s1"]),
    "proxyless-cpu": dict(first_conv=40, feature_mix=1432, dropout=0.2, blocks=[
        "e1_k3_c24_s1", "e6_k3_c32_s2", "e3_k3_c32_s1", "e3_k3_c32_s1", "e3_k3_c32_s1", "e6_k3_c48_s2",
        "e3_k3_c48_s1", "e3_k3_c48_s1", "e3_k5_c48_s1", "e6_k3_c88_s2", _Z, _Z, "e3_k3_c88_s1",
        "e6_k5_c104_s1", "e3_k3_c104_s1", "e3_k3_c104_s1", "e3_k3_c104_s1", "e6_k5_c216_s2",
        "e3_k5_c216_s1", "e3_k5_c216_s1", "e3_k3_c216_s1", "e6_k5_c360_s1"]),
    "proxyless-mobile": dict(first_conv=32, feature_mix=1280, dropout=0.1, blocks=[
        "e1_k3_c16_s1", "e3_k5_c32_s2", "e3_k3_c32_s1", _Z, _Z, "e3_k7_c40_s2", "e3_k3_c40_s1",
        "e3_k5_c40_s1", "e3_k5_c40_s1", "e6_k7_c80_s2", "e3_k5_c80_s1", "e3_k5_c80_s1", "e3_k5_c80_s1",
        "e6_k5_c96_s1", "e3_k5_c96_s1", "e3_k5_c96_s1", "e3_k5_c96_s1", "e6_k7_c192_s2",
        "e6_k7_c192_s1", "e3_k7_c192_s1", "e3_k7_c192_s1", "e6_k7_c320_s1"]),
    "proxyless-mobile-14": dict(first_conv=48, feature_mix=1792, dropout=0.3, blocks=[
        "e1_k3_c24_s1", "e3_k5_c40_s2", "e3_k3_c40_s1", _Z, _Z, "e3_k7_c56_s2", "e3_k3_c56_s1",
        "e3_k5_c56_s1", "e3_k5_c56_s1", "e6_k7_c112_s2", "e3_k5_c112_s1", "e3_k5_c112_s1",
        "e3_k5_c112_s1", "e6_k5_c136_s1", "e3_k5_c136_s1", "e3_k5_c136_s1", "e3_k5_c136_s1",
        "e6_k7_c256_s2", "e6_k7_c256_s1", "e3_k7_c256_s1", "e3_k7_c256_s1", "e6_k7_c448_s1"]),
}
_DEFAULT = RELEASED["proxyless-mobile"]


# Spec ----------------------------------------------------------------------------------------

@dataclass
class MBConvChainSpec:
    """Keys of `mbconv-chain`; the defaults build the released `proxyless_mobile` (dropout 0)."""

    num_classes: int = 1000
    in_channels: int = 3
    stem: Literal["imagenet", "cifar"] = "imagenet"
    first_conv: int = _DEFAULT["first_conv"]
    blocks: list[str] = field(default_factory=lambda: list(_DEFAULT["blocks"]))
    feature_mix: int | None = _DEFAULT["feature_mix"]
    dropout: float = 0.0

    @property
    def natural_input(self) -> tuple[int, int, int]:
        """`stem: cifar` networks are built for 32x32 images, the others for ImageNet's 224x224."""
        size = CIFAR_SIZE if self.stem == "cifar" else IMAGENET_SIZE
        return (self.in_channels, size, size)

    def choices(self) -> list[BlockChoice | None]:
        """The parsed blocks (None for 'zero')."""
        return [parse_block(text) for text in self.blocks]

    def first_conv_stride(self) -> int:
        return 1 if self.stem == "cifar" else 2

    def block_strides(self) -> list[int]:
        """The stride each block runs at: as written, except that `stem: cifar` runs the first
        stride-2 block at stride 1; a zero block has stride 1."""
        strides = [1 if c is None else c.stride for c in self.choices()]
        if self.stem == "cifar" and 2 in strides:
            strides[strides.index(2)] = 1
        return strides

    def check(self) -> None:
        require_positive(num_classes=self.num_classes, in_channels=self.in_channels, first_conv=self.first_conv)
        if self.feature_mix is not None:
            require(self.feature_mix >= 1, f"key 'feature_mix' = {self.feature_mix}",
                    "expected a positive integer (its output channels), or null for no feature-mix conv")
        require(0 <= self.dropout < 1, f"key 'dropout' = {self.dropout}", "expected 0 <= dropout < 1")
        require(len(self.blocks) > 0, "key 'blocks' is empty", f"expected a list of block strings {GRAMMAR}")
        for i, text in enumerate(self.blocks):
            _, problem = _block_problem(text)
            if problem:
                raise SpecProblem(f"key 'blocks' entry {i} = {text!r}", problem)


# Shapes --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockPosition:
    """What block `index` sees: input and output channels, the stride it runs at, input and
    output feature-map sizes (square), and whether it adds an identity residual. A zero block has
    cout = cin, stride 1, out_size = in_size and residual False (it is the identity)."""

    index: int
    cin: int
    cout: int
    stride: int
    in_size: int
    out_size: int
    residual: bool


@dataclass(frozen=True)
class ConvShape:
    """A plain conv of the head or the tail: channels, kernel, stride and feature-map sizes."""

    cin: int
    cout: int
    kernel: int
    stride: int
    in_size: int
    out_size: int


@dataclass(frozen=True)
class HeadShapes:
    """The layers around the blocks: the first conv, the feature-mix conv (None without one), and
    the classifier's input features (= the width after the feature mix, or after the last block)
    and classes; `final_size` is the feature-map size the average pool sees."""

    first_conv: ConvShape
    feature_mix: ConvShape | None
    classifier_in: int
    num_classes: int
    final_size: int


def _conv_out(size: int, stride: int) -> int:
    """Output size of an odd-kernel conv with padding k // 2."""
    return (size - 1) // stride + 1


def _as_spec(spec: Any) -> MBConvChainSpec:
    if isinstance(spec, MBConvChainSpec):
        return spec
    if isinstance(spec, nn.Module):
        spec = getattr(spec, "spec", None)
        if isinstance(spec, MBConvChainSpec):
            return spec
        raise SpecError(f"this network is not a '{FAMILY}' model; give its spec or a '{FAMILY}' model")
    parsed = parse_spec(spec)
    if not isinstance(parsed, MBConvChainSpec):
        family = normalize_spec(spec)["family"]
        raise SpecError(f"block shapes need a '{FAMILY}' spec, not one of family '{family}': "
                        f"give a spec with 'family: {FAMILY}'")
    return parsed


def block_positions(spec: Any, image_size: int | None = None) -> list[BlockPosition]:
    """The shape each block sees for a square input of `image_size` (default: the spec's natural
    input, 224 or 32). `spec`: the spec dataclass, a spec dict, a model name or YAML path, or a
    built `mbconv-chain` model."""
    spec = _as_spec(spec)
    size = _conv_out(image_size or spec.natural_input[1], spec.first_conv_stride())
    cin, out = spec.first_conv, []
    for i, (choice, stride) in enumerate(zip(spec.choices(), spec.block_strides())):
        if choice is None:
            out.append(BlockPosition(i, cin, cin, 1, size, size, False))
            continue
        new = _conv_out(size, stride)
        out.append(BlockPosition(i, cin, choice.out, stride, size, new, stride == 1 and cin == choice.out))
        cin, size = choice.out, new
    return out


def head_shapes(spec: Any, image_size: int | None = None) -> HeadShapes:
    """The first conv's and the feature mix's shapes and the classifier's width (see HeadShapes)."""
    spec = _as_spec(spec)
    size = image_size or spec.natural_input[1]
    stride = spec.first_conv_stride()
    first = ConvShape(spec.in_channels, spec.first_conv, 3, stride, size, _conv_out(size, stride))
    positions = block_positions(spec, size)
    width, final = positions[-1].cout, positions[-1].out_size
    mix = None
    if spec.feature_mix is not None:
        mix = ConvShape(width, spec.feature_mix, 1, 1, final, final)
        width = spec.feature_mix
    return HeadShapes(first, mix, width, spec.num_classes, final)


# Modules -------------------------------------------------------------------------------------

def set_bn(module: nn.Module, momentum: float = BN_MOMENTUM, eps: float = BN_EPS) -> None:
    """The official nets' BN settings on every BN layer of `module`."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum, m.eps = momentum, eps


def proxyless_init(module: nn.Module) -> None:
    """The official `init_model('he_fout')` (see the module docstring): conv N(0, sqrt(2 / (k*k*out))),
    BN (1, 0), Linear U(+-1/sqrt(in)) with zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def mbconv_block(cin: int, cout: int, kernel: int, expand: int, stride: int) -> nn.Module:
    """One MBConv as the family builds it (an `InvertedResidual` with ReLU6, hidden =
    round(cin x expand), no expansion conv when expand = 1, identity residual when stride 1 and
    cin = cout), with the official BN settings and initialisation."""
    choice, problem = _block_problem(format_block(BlockChoice(expand, kernel, cout, stride)))
    if problem or cin < 1:
        raise SpecProblem(f"MBConv block {cin}->{cout} k{kernel} e{expand} s{stride}",
                          problem or f"in channels {cin} must be at least 1")
    block = InvertedResidual(cin, int(round(cin * expand)), cout, stride, expand=expand != 1, kernel=kernel,
                             act=nn.ReLU6)
    set_bn(block)
    proxyless_init(block)
    return block


@register_family(FAMILY)
class MBConvChain(SpecModel):
    """`first_conv` -> `blocks` (nn.Sequential; a zero block is nn.Identity) -> `feature_mix`
    (None without one) -> `avgpool` -> `classifier` (Dropout, Linear)."""

    Spec = MBConvChainSpec

    def __init__(self, spec: MBConvChainSpec) -> None:
        super().__init__(spec)
        self.first_conv = conv_bn(spec.in_channels, spec.first_conv, 3, spec.first_conv_stride(), act=nn.ReLU6)
        blocks: list[nn.Module] = []
        for pos, choice in zip(block_positions(spec), spec.choices()):
            if choice is None:
                blocks.append(nn.Identity())
            else:
                blocks.append(mbconv_block(pos.cin, pos.cout, choice.kernel, choice.expand, pos.stride))
        self.blocks = nn.Sequential(*blocks)
        heads = head_shapes(spec)
        self.feature_mix = (None if heads.feature_mix is None
                            else conv_bn(heads.feature_mix.cin, heads.feature_mix.cout, 1, act=nn.ReLU6))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(spec.dropout), nn.Linear(heads.classifier_in, spec.num_classes))
        set_bn(self)
        proxyless_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.first_conv(x))
        if self.feature_mix is not None:
            x = self.feature_mix(x)
        return self.classifier(torch.flatten(self.avgpool(x), 1))


for _name, _spec in RELEASED.items():
    register_model(_name, family=FAMILY, **_spec)
