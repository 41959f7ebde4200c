"""What each metric name means for plotting: quality (higher or lower is better) or cost."""

from __future__ import annotations

from nas_impl.replication.published import ABSOLUTE_ACCURACY_METRICS, ACCURACY_METRICS, UNITS

# Quality metrics in the order a plot prefers them when a table has several.
QUALITY_METRICS = (*ABSOLUTE_ACCURACY_METRICS, "ppl", "valid_ppl")
LOWER_IS_BETTER = frozenset({"top1_err", "top5_err", "acc_drop", "top5_drop", "ppl", "valid_ppl"})
# Cost metrics that quality is plotted against, each on its own panel, in panel order.
COST_AXES = ("macs", "memory_mb", "peak_activation_mb", "latency_ms")

_AXIS_NAMES = {
    "macs": "MACs",
    "params": "parameters",
    "params_no_norm": "parameters (without norm layers)",
    "memory_mb": "memory",
    "peak_activation_mb": "peak activation memory",
    "latency_ms": "latency",
    "latency_cpu_ms": "latency on a CPU",
    "latency_gpu_ms": "latency on a GPU",
    "latency_mobile_ms": "latency on a phone",
    "ppl": "perplexity",
    "valid_ppl": "validation perplexity",
    "search_gpu_h": "GPU search cost",
    "params_reduction_claim": "fewer parameters (claim)",
    "macs_reduction_claim": "fewer MACs (claim)",
}

_COUNT_UNITS = ("count", "K", "M", "G")


def is_accuracy(metric: str) -> bool:
    return metric in ACCURACY_METRICS


def direction(metric: str) -> str:
    return "lower is better" if metric in LOWER_IS_BETTER else "higher is better"


def axis_label(metric: str, unit: str) -> str:
    name = _AXIS_NAMES.get(metric, metric)
    return f"{name} ({unit})" if unit else name


def quality_label(metric: str, unit: str) -> str:
    return f"{axis_label(metric, unit)}, {direction(metric)}"


def unit_factor(unit: str) -> float | None:
    """Multiplier from `unit` to plain counts, or None for units that are not count prefixes."""
    return UNITS[unit] if unit in _COUNT_UNITS else None
