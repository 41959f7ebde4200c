"""ProxylessNAS search recipes: the super-network's weight recipe plus the search settings.

The weight keys (`epochs`, `lr`, `batch_size`, SGD, `label_smoothing`, ...) are the joint search
phase's (the official `--n_epochs 120`, `--init_lr 0.025`); the warm-up before it, on sampled
paths only, is `supernet_warmup_epochs` at its own cosine from `supernet_warmup_lr` (the
official `--warmup_epochs 40` and the hard-coded lr_max 0.05, proxylessnas.md §3.3).

The search space is the base `mbconv-chain` spec (widths, depths, strides: one block string per
block) and `kernels` x `expands` (+ Zero on residual blocks): every block after the first
`fixed_blocks` becomes a mixed edge over those candidates at its width and stride.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_impl.methods.proxylessnas.work import SEARCH_WORK
from nas_impl.methods.interface import MethodInfo, Stage
from nas_impl.methods.search_recipe import build_settings, check_settings, search_recipe_dict, split_search_recipe
from nas_impl.training.recipe import Recipe

ARCH_ALGOS = ("gradient", "reinforce")
GRAD_MODES = ("full_v2", "two", "full")  # as nas_impl.methods.proxylessnas.mixed_edge (kept torch-free here)
HARDWARE = ("latency", "flops", "none")
LOSS_FORMS = ("mul#log", "add#linear", "add")
SEARCH_BLOCKS = ("all", "residual")  # as nas_impl.metrics.latency_lut


@dataclass(frozen=True)
class ProxylessSettings:
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 6)
    zero: bool = True  # the Zero op on every block with an identity residual (stride 1, in = out)
    fixed_blocks: int = 1  # leading blocks kept as the base spec writes them (the MBConv1 block)
    search_blocks: str = "all"  # or 'residual': blocks without an identity residual are kept as written
    supernet_warmup_epochs: int = 40  # weights only, on paths sampled from p (uniform at alpha's init)
    supernet_warmup_lr: float = 0.05  # cosine to 0 over the warm-up (official hard-coded lr_max)
    arch_algo: str = "gradient"  # or 'reinforce' (Proxyless-R, the paper's headline mobile net)
    grad_mode: str = "full_v2"  # the code's default; 'two' = the paper's two-path update
    arch_lr: float = 1e-3
    arch_betas: tuple[float, float] = (0.0, 0.999)
    arch_eps: float = 1e-8
    arch_weight_decay: float = 0.0
    arch_init_std: float = 1e-3  # alpha ~ normal(0, std)
    arch_every: int = 5  # gradient: one architecture update after every this many weight steps
    arch_steps: int = 1  # architecture updates at each of those points
    arch_skip_epochs: int = 1  # joint epochs before the first architecture update
    arch_batch_size: int | None = None  # held-out batch of an update (None: gradient = batch_size, REINFORCE = eval_batch_size)
    hardware: str = "latency"  # what the search trades accuracy against: LUT latency, MACs, or nothing
    loss_form: str = "mul#log"
    loss_alpha: float = 0.2  # mul#log: alpha * CE * (log E / log ref) ** beta
    loss_beta: float = 0.3
    loss_lambda: float = 0.1  # add#linear: CE + lambda (E - ref) / ref; add: CE + lambda E
    ref_value: float | None = None  # ms (latency) or MMACs (flops); None = E at uniform p (the space's mean)
    latency_table: str | None = None  # a LUT file (official mobile_trim.yaml or the suite's); None = measure here
    latency_repeats: int = 100  # timings per LUT entry (median kept)
    latency_warmup: int = 10
    rl_samples: int = 10  # sampled nets per REINFORCE update
    rl_updates_per_epoch: int = 300
    rl_tradeoff: float = 0.1  # reward = acc * (ref / value) ** tradeoff
    rl_baseline_decay: float = 0.99
    valid_size: int = 5000  # class-balanced held-out training images for architecture updates
    split_seed: int = 0

    def __post_init__(self) -> None:
        positive = "a positive integer"
        checks = [
            (("kernels",), len(self.kernels) >= 1 and all(k >= 1 and k % 2 == 1 for k in self.kernels),
             "a non-empty list of odd kernel sizes, e.g. [3, 5, 7]"),
            (("expands",), len(self.expands) >= 1 and all(e >= 1 for e in self.expands),
             "a non-empty list of expansion ratios >= 1, e.g. [3, 6]"),
            (("fixed_blocks",), self.fixed_blocks >= 0, "a non-negative integer"),
            (("search_blocks",), self.search_blocks in SEARCH_BLOCKS, f"one of {', '.join(SEARCH_BLOCKS)}"),
            (("supernet_warmup_epochs",), self.supernet_warmup_epochs >= 0, "a non-negative integer"),
            (("supernet_warmup_lr",), self.supernet_warmup_lr > 0, "positive"),
            (("arch_algo",), self.arch_algo in ARCH_ALGOS, f"one of {', '.join(ARCH_ALGOS)}"),
            (("grad_mode",), self.grad_mode in GRAD_MODES, f"one of {', '.join(GRAD_MODES)}"),
            (("arch_lr",), self.arch_lr > 0, "positive"),
            (("arch_betas",), len(self.arch_betas) == 2 and all(0 <= b < 1 for b in self.arch_betas),
             "two numbers in [0, 1), e.g. [0, 0.999]"),
            (("arch_eps",), self.arch_eps > 0, "positive"),
            (("arch_weight_decay",), self.arch_weight_decay >= 0, "non-negative (0 disables it)"),
            (("arch_init_std",), self.arch_init_std >= 0, "non-negative"),
            (("arch_every",), self.arch_every >= 1, positive),
            (("arch_steps",), self.arch_steps >= 1, positive),
            (("arch_skip_epochs",), self.arch_skip_epochs >= 0, "a non-negative integer"),
            (("arch_batch_size",), self.arch_batch_size is None or self.arch_batch_size >= 1, f"{positive}, or null"),
            (("hardware",), self.hardware in HARDWARE, f"one of {', '.join(HARDWARE)}"),
            (("loss_form",), self.loss_form in LOSS_FORMS, f"one of {', '.join(LOSS_FORMS)}"),
            (("loss_alpha",), self.loss_alpha > 0, "positive"),
            (("loss_beta",), self.loss_beta >= 0, "non-negative"),
            (("loss_lambda",), self.loss_lambda >= 0, "non-negative"),
            (("ref_value",), self.ref_value is None or self.ref_value > 0, "positive (ms or MMACs), or null"),
            (("latency_repeats",), self.latency_repeats >= 1, positive),
            (("latency_warmup",), self.latency_warmup >= 0, "a non-negative integer"),
            (("rl_samples",), self.rl_samples >= 1, positive),
            (("rl_updates_per_epoch",), self.rl_updates_per_epoch >= 1, positive),
            (("rl_tradeoff",), self.rl_tradeoff >= 0, "non-negative"),
            (("rl_baseline_decay",), 0 <= self.rl_baseline_decay <= 1, "in [0, 1]"),
            (("valid_size",), self.valid_size >= 1, positive),
            (("split_seed",), self.split_seed >= 0, "a non-negative integer"),
        ]
        check_settings(self, checks)

    @property
    def target(self) -> str:
        """The one shape a search records, named by what it trades accuracy against."""
        return self.hardware


@dataclass(frozen=True)
class SearchRecipe:
    weights: Recipe  # the joint phase's weight training (the warm-up has its own lr)
    proxyless: ProxylessSettings

    def to_dict(self) -> dict[str, Any]:
        return search_recipe_dict(self.weights, self.proxyless)


def search_recipe_from_dict(raw: dict[str, Any], origin: str = "search recipe") -> SearchRecipe:
    weights, settings = split_search_recipe(raw, origin, ProxylessSettings)
    return SearchRecipe(weights, build_settings(ProxylessSettings, settings, origin))


# `latency` builds the lookup table on this device (or reads the user's file) and writes
# latency_table.yaml; `search` warms up, searches and derives the net.
INFO = MethodInfo("proxylessnas", ProxylessSettings, search_recipe_from_dict, lambda recipe: (recipe.proxyless.target,),
                  stages=(Stage("latency", "latency.json"),
                          Stage("search", "search.json", checkpoint="search_checkpoint.pt")),
                  latency_target=True, search_work=SEARCH_WORK)
