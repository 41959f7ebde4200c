"""Static and measured cost metrics: parameters, MACs ("FLOPs"), memory, latency."""

from nas_impl.metrics.latency import device_name, measure_latency
from nas_impl.metrics.macs import count_macs
from nas_impl.metrics.memory import activation_memory
from nas_impl.metrics.params import count_params, param_bytes
from nas_impl.metrics.summary import model_metrics, spec_macs

__all__ = [
    "activation_memory",
    "count_macs",
    "count_params",
    "device_name",
    "measure_latency",
    "model_metrics",
    "param_bytes",
    "spec_macs",
]
