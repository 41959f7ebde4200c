"""TAS: "Network Pruning via Transformable Architecture Search" (Dong & Yang, NeurIPS 2019).

A width/depth super-network over a CIFAR ResNet (`search_net`), its differentiable expected
MACs and the released configs' FLOP rule (`flops`), the FLOP-constrained architecture loss (`loss`), the argmax shape as a
`resnet-cifar` spec (`derive`) and one alternating search step (`search`); the recipe
(`recipe`), the epoch loop (`loop`) and the suite's method interface (`method`).
Names are imported on first use (the recipe is read without torch).
"""

from nas_impl.lazy import lazy_attributes

_WHERE = {
    "depth_choices": "choices", "width_choices": "choices", "derive_spec": "derive",
    "argmax_macs": "flops", "band_macs": "flops", "estimated_macs": "flops", "expected_macs": "flops", "arch_loss": "loss", "flop_loss": "loss",
    "search_step": "search", "tau_at": "search", "TASResNet": "search_net",
}
# `cwi` is a submodule: its function is `nas_impl.methods.tas.cwi.cwi` (see nas_impl/replication/__init__.py).
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
