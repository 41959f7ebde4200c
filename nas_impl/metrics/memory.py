"""Inference memory: parameters + the peak of activation tensors that must be held at once.

MemNAS (memnas.md §5) defines running memory as parameters plus the *essential* intermediate
feature maps: a feature map is live from the step that creates it until the step of its last
reader, and the working memory is the peak over the execution schedule. This module applies
that rule to the operators the network actually executes:

1. Run one eager forward pass (eval mode, no_grad, a zero input of `batch_size` x
   `input_size` on the model's device) under a `TorchDispatchMode` that records, in
   execution order, each ATen operator's tensor inputs and outputs, identified by their
   storage.
2. A storage is one buffer, counted once however many views (reshape, slice, transpose) refer
   to it. Outputs that alias an input (views, in-place ops such as `relu_` or `+=`) allocate
   nothing. Parameters and buffers are excluded (they are in `param_bytes`). With `fold_bn`
   (the default) batch norm also allocates nothing: it counts as folded into the conv that
   produces its input, as in deployed inference; `fold_bn=False` counts eager PyTorch's
   out-of-place BN output (which doubles the peak of a conv-BN pair).
3. A storage is live from the operator that creates it (or, for the network input and other
   tensors made outside the pass, the first operator that reads it) through the last operator
   that reads it; the network's outputs stay live to the end. Outputs nobody reads (BN's
   saved statistics, max-pool indices) are implementation details, not feature maps, and are
   not counted.
4. `peak_activation_bytes` = max over operators of the bytes of all storages live at that
   operator, so it includes an operator's inputs and outputs together, and every skip tensor
   waiting for its residual add.

This is a property of the operator graph and schedule, not of Python references or the
allocator: it is deterministic, independent of when the eager program frees tensors, and
ignores kernels' internal workspaces. Floating-point storages are counted at the itemsize of
`dtype` (the forward itself runs in the model's own dtype); integer storages at their own.
`param_bytes` = number of parameters x `dtype` itemsize (MemNAS: #params x 4 B); BN running
statistics are not included.

Relation to MemNAS: its code (`cal_in`) simulates only the first cell at 32x32 and counts
channel numbers; its tables use #params x 4 B plus an undocumented working-memory figure that
no single definition reproduces (memnas.md §5.4). Compare memory only among this suite's own
measurements. `total_bytes` = `param_bytes` + `peak_activation_bytes` is the MemNAS-style total.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nas_impl.metrics.macs import example_input, model_device_dtype


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class _StorageTrace(TorchDispatchMode):
    """Records, per operator, which storages it reads and which it creates."""

    def __init__(self, excluded: set[int], dtype: torch.dtype, fold_bn: bool) -> None:
        super().__init__()
        self.excluded, self.dtype, self.fold_bn = excluded, dtype, fold_bn
        self.ops: list[str] = []
        self.reads: list[set[int]] = []
        self.creates: list[set[int]] = []
        self.nbytes: list[int] = []  # per storage id
        self._live: dict[int, tuple[int, StorageWeakRef]] = {}  # StorageImpl address -> (id, ref)

    def storage_id(self, tensor: torch.Tensor) -> tuple[int | None, bool]:
        """(id, newly seen) of the tensor's storage; id None for parameters and buffers."""
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self.excluded:
            return None, False
        known = self._live.get(key)
        if known is not None and not known[1].expired():
            return known[0], False
        # A freed StorageImpl address can be reused; the expired weak reference tells them apart.
        sid = len(self.nbytes)
        self._live[key] = (sid, StorageWeakRef(storage))
        itemsize = self.dtype.itemsize if tensor.is_floating_point() else tensor.element_size()
        self.nbytes.append(storage.nbytes() // tensor.element_size() * itemsize)
        return sid, True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        reads = set()
        for t in _tensors((args, kwargs)):
            sid, _ = self.storage_id(t)
            if sid is not None:
                reads.add(sid)
        out = func(*args, **(kwargs or {}))
        outputs = _tensors(out)
        if self.fold_bn and "batch_norm" in func.__name__ and reads:
            # BN folded into its producer: its output is the input buffer, rewritten in place.
            storage = outputs[0].untyped_storage()
            self._live[storage._cdata] = (self.storage_id(args[0])[0], StorageWeakRef(storage))
        creates = set()
        for t in outputs:
            sid, new = self.storage_id(t)
            if new:
                creates.add(sid)
        self.ops.append(str(func))
        self.reads.append(reads)
        self.creates.append(creates)
        return out


def activation_memory(model: nn.Module, input_size: Sequence[int], batch_size: int = 1,
                      dtype: torch.dtype = torch.float32, fold_bn: bool = True) -> dict[str, Any]:
    """Parameter bytes and peak live-activation bytes of one inference pass (see module doc)."""
    params = list(model.parameters())
    held = itertools.chain(params, model.buffers())
    trace = _StorageTrace({t.untyped_storage()._cdata for t in held}, dtype, fold_bn)
    x = example_input(model, input_size, batch_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), trace:
            out = model(x)
    finally:
        model.train(was_training)

    n = len(trace.ops)
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for i, (reads, creates) in enumerate(zip(trace.reads, trace.creates)):
        for sid in creates:
            start[sid] = i
        for sid in reads:
            start.setdefault(sid, i)  # made outside the pass: live from its first reader
            end[sid] = i
    for t in _tensors(out):
        sid, _ = trace.storage_id(t)
        if sid in start:
            end[sid] = n - 1
    delta = [0] * (n + 1)
    for sid, last in end.items():  # storages never read (and not returned) are not counted
        delta[start[sid]] += trace.nbytes[sid]
        delta[last + 1] -= trace.nbytes[sid]
    live, peak, peak_at = 0, 0, 0
    for i in range(n):
        live += delta[i]
        if live > peak:
            peak, peak_at = live, i
    p_bytes = sum(p.numel() for p in params) * dtype.itemsize
    input_sid, _ = trace.storage_id(x)
    return {
        "param_bytes": p_bytes,
        "peak_activation_bytes": peak,
        "total_bytes": p_bytes + peak,
        "input_bytes": trace.nbytes[input_sid] if input_sid is not None else 0,
        "peak_op": f"{trace.ops[peak_at]} (#{peak_at} of {n})" if n else "",
        "batch_size": batch_size,
        "fold_bn": fold_bn,
        "dtype": str(dtype).removeprefix("torch."),
    }
