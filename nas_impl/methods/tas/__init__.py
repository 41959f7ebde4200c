"""TAS: "Network Pruning via Transformable Architecture Search" (Dong & Yang, NeurIPS 2019).

A width/depth super-network over a CIFAR ResNet (`search_net`), its differentiable expected
MACs (`flops`), the FLOP-constrained architecture loss (`loss`), the argmax shape as a
`resnet-cifar` spec (`derive`) and one alternating search step (`search`); the recipe
(`recipe`), the epoch loop (`loop`) and the suite's method interface (`method`).
"""

from nas_impl.methods.tas.choices import depth_choices, width_choices
from nas_impl.methods.tas.cwi import cwi
from nas_impl.methods.tas.derive import derive_spec
from nas_impl.methods.tas.flops import argmax_macs, expected_macs
from nas_impl.methods.tas.loss import arch_loss, flop_loss
from nas_impl.methods.tas.search import search_step, tau_at
from nas_impl.methods.tas.search_net import TASResNet

__all__ = [
    "TASResNet",
    "arch_loss",
    "argmax_macs",
    "cwi",
    "depth_choices",
    "derive_spec",
    "expected_macs",
    "flop_loss",
    "search_step",
    "tau_at",
    "width_choices",
]
