"""Latency lookup tables (LUTs) for ProxylessNAS-style latency-aware search (issue 14).

A LUT maps one block of a network, written as a key string, to its latency in milliseconds.
The keys are those of the official ProxylessNAS code (`search/utils/latency_estimator.py`,
`LatencyEstimator.predict`, at commit bf58b5c): the layer type, then `input:` and `output:`
shapes written as `HxWxC` (the parts joined by `x`), all parts joined by `-`:

    Conv-input:224x224x3-output:112x112x32                    first 3x3 conv (stride 2)
    expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0
                                                              one MBConv block (idskip: residual)
    Conv_1-input:7x7x320-output:7x7x1280                      1x1 feature-mix conv
    Logits-input:7x7x1280-output:1000                         pool + classifier; the output is
                                                              the class count alone, not HxWxC

Each entry holds `mean`, `var` and `count` (count = number of timings), in ms. Two file
layouts are read: the official one (`mobile_trim.yaml`: a flat mapping key -> {count, mean,
var}) and the suite's own (`device`, `threads`, `source`, `statistic`, `unit` and `entries`,
the entries in the official per-key layout), which `LatencyTable.save` writes atomically. A
measured table stores the **median** of its timings under `mean` (the official field name,
kept so that either reader can read either file) and says so in `statistic: median`.

`expected_latency` is the search-time regulariser: the fixed blocks' latencies plus, for each
mixed edge, sum_j p_j * LUT(op_j) (a Zero op contributes 0), differentiable in p, as in the
official `SuperProxylessNASNets.expected_latency`. `latency_loss` combines it with the
cross-entropy in the official code's two forms (`mul#log`, `add#linear`, with the official
argparse defaults) or the paper's additive form (`add`).
"""

from __future__ import annotations

import difflib
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.io import read_user_text, write_text_atomic
from nas_impl.metrics.latency import device_name

__all__ = [
    "LOSS_FORMS",
    "LatencyEntry",
    "LatencyTable",
    "expected_latency",
    "feature_mix_key",
    "first_conv_key",
    "latency_loss",
    "logits_key",
    "mbconv_key",
    "measure_latency_table",
    "network_latency",
]

# Key strings -----------------------------------------------------------------------------------

Size = int | Sequence[int]


def _int(value: Any, name: str) -> int:
    """`value` as an int; integral floats (3.0) are accepted, as the official `%d` would print
    them. Anything else is a SpecError naming the argument."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or value < 0):
        raise SpecError(f"latency LUT key: {name} must be a non-negative integer, not {value!r}")
    return int(value)


def _shape(size: Size, channels: int, name: str) -> str:
    """`HxWxC`: a square side (int) or an (H, W) pair, then the channel count."""
    if isinstance(size, (int, float)) and not isinstance(size, bool):
        h = w = _int(size, f"{name} size")
    elif isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2:
        h, w = (_int(s, f"{name} size") for s in size)
    else:
        raise SpecError(f"latency LUT key: {name} size must be an int or an (H, W) pair, not {size!r}")
    return f"{h}x{w}x{_int(channels, f'{name} channels')}"


def mbconv_key(in_size: Size, cin: int, out_size: Size, cout: int, expand: int, kernel: int,
               stride: int, idskip: bool | int) -> str:
    """Key of one MBConv (mobile inverted residual) block. `idskip` is whether the block has
    an identity shortcut (the official code sets it for every candidate of an edge whose block
    has a shortcut, i.e. stride 1 and cin == cout). The official search computes the output
    side as in_size // stride."""
    return "-".join([
        "expanded_conv",
        f"input:{_shape(in_size, cin, 'input')}",
        f"output:{_shape(out_size, cout, 'output')}",
        f"expand:{_int(expand, 'expand')}",
        f"kernel:{_int(kernel, 'kernel')}",
        f"stride:{_int(stride, 'stride')}",
        f"idskip:{_int(int(idskip) if isinstance(idskip, bool) else idskip, 'idskip')}",
    ])


def first_conv_key(in_size: Size, cin: int, out_size: Size, cout: int) -> str:
    """Key of the first (3x3, stride 2) conv: the official search uses 224, 3 -> 112, C."""
    return f"Conv-input:{_shape(in_size, cin, 'input')}-output:{_shape(out_size, cout, 'output')}"


def feature_mix_key(size: Size, cin: int, cout: int) -> str:
    """Key of the 1x1 feature-mix conv before the pool (7x7 at 224 px input)."""
    return f"Conv_1-input:{_shape(size, cin, 'input')}-output:{_shape(size, cout, 'output')}"


def logits_key(size: Size, cin: int, classes: int) -> str:
    """Key of everything after the feature mix (global pool + linear classifier); the output
    is the class count alone, as in the official code (`[classifier.out_features]`)."""
    return f"Logits-input:{_shape(size, cin, 'input')}-output:{_int(classes, 'classes')}"


# The table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyEntry:
    """One block's latency in ms: `mean_ms` (the median for a table measured here), the
    variance of the timings (ms^2) and their count; var and count are None when a file leaves
    them out."""

    mean_ms: float
    var: float | None = None
    count: int | None = None


_SUITE_KEYS = {"device", "threads", "source", "statistic", "unit", "entries"}
_ENTRY_KEYS = {"mean", "var", "count"}
_LOAD_FIX = ("a latency LUT is either the official layout (key: {mean, var, count}, as mobile_trim.yaml) "
             "or the suite's (device, entries: ...); measure a new one with measure_latency_table")


@dataclass(frozen=True)
class LatencyTable:
    """Block key -> latency (ms), with the device it was measured on.

    `source` is where the numbers come from (how they were measured, or the official file);
    `path` the file the table was loaded from (None for a table built in memory; not part of
    equality). `statistic` is what `mean` holds: "median" for tables measured here, "mean" for
    the official ones."""

    entries: dict[str, LatencyEntry]
    device: str
    source: str
    threads: int | None = None
    statistic: str = "mean"
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", dict(self.entries))

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def _where(self) -> str:
        return f"latency LUT {self.path}" if self.path else f"latency LUT ({self.source}, {self.device})"

    def lookup(self, key: str) -> float:
        """Latency of `key` in ms, or one SpecError naming the key and the table."""
        entry = self.entries.get(key)
        if entry is None:
            close = difflib.get_close_matches(key, list(self.entries), n=1, cutoff=0.8)
            hint = f" (closest entry: '{close[0]}')" if close else ""
            raise SpecError(
                f"{self._where()} has no entry '{key}'{hint}: the table was built for another search space "
                f"(widths, kernels, expand ratios, input size) than the network scored; measure a table for "
                f"this search space with measure_latency_table, or score networks inside the table's space")
        return entry.mean_ms

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> LatencyTable:
        """Read the suite's YAML or an official LUT file (flat key -> {mean, var, count});
        `device` names the device of an official file, which does not record it."""
        path = Path(path)
        text = read_user_text(path, "latency LUT", _LOAD_FIX)
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise SpecError(f"latency LUT {path} is not valid YAML: {' '.join(str(err).split())}") from None
        if not isinstance(raw, dict):
            raise SpecError(f"latency LUT {path} must hold a mapping, not {type(raw).__name__}: {_LOAD_FIX}")
        if "entries" in raw:  # the suite's layout (no official key is called "entries")
            unknown = sorted(str(k) for k in raw if k not in _SUITE_KEYS)
            if unknown:
                raise SpecError(f"latency LUT {path}: unknown top-level key(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(sorted(_SUITE_KEYS))}")
            if not isinstance(raw.get("device"), str) or not raw["device"]:
                raise SpecError(f"latency LUT {path}: 'device' must name the device the table was measured on")
            if raw.get("unit", "ms") != "ms":
                raise SpecError(f"latency LUT {path}: 'unit' must be ms, not {raw['unit']!r}")
            threads = raw.get("threads")
            if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
                raise SpecError(f"latency LUT {path}: 'threads' must be a positive integer, not {threads!r}")
            statistic = raw.get("statistic", "mean")
            if statistic not in ("mean", "median"):
                raise SpecError(f"latency LUT {path}: 'statistic' must be mean or median, not {statistic!r}")
            entries_raw = raw["entries"]
            if not isinstance(entries_raw, dict):
                raise SpecError(f"latency LUT {path}: 'entries' must be a mapping key -> {{mean, var, count}}, "
                                f"not {type(entries_raw).__name__}")
            return cls(_parse_entries(entries_raw, path, "entries."), raw["device"],
                       str(raw.get("source") or path), threads, statistic, str(path))
        return cls(_parse_entries(raw, path, ""), device or "not recorded (official LUT file)", str(path),
                   None, "mean", str(path))

    def to_dict(self) -> dict[str, Any]:
        """The suite's YAML layout as a plain mapping."""
        entries = {}
        for key, e in self.entries.items():
            item: dict[str, Any] = {"mean": float(e.mean_ms)}
            if e.var is not None:
                item["var"] = float(e.var)
            if e.count is not None:
                item["count"] = int(e.count)
            entries[key] = item
        return {"device": self.device, "threads": self.threads, "source": self.source,
                "statistic": self.statistic, "unit": "ms", "entries": entries}

    def save(self, path: str | Path) -> Path:
        """Write the suite's YAML atomically (a temporary file, then a rename)."""
        path = Path(path)
        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False, width=1000))
        return path


def _number(value: Any, where: str, path: Path, integer: bool = False) -> float | int:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and value >= 0 and (not integer or isinstance(value, int)))
    if not ok:
        kind = "a non-negative integer" if integer else "a finite non-negative number (ms)"
        raise SpecError(f"latency LUT {path}: {where} must be {kind}, not {value!r}")
    return value


def _parse_entries(raw: dict, path: Path, prefix: str) -> dict[str, LatencyEntry]:
    if not raw:
        raise SpecError(f"latency LUT {path} holds no entries: {_LOAD_FIX}")
    entries = {}
    for key, item in raw.items():
        if not isinstance(key, str):
            raise SpecError(f"latency LUT {path}: key {key!r} must be a string such as "
                            f"'{mbconv_key(112, 16, 56, 24, 3, 5, 2, 0)}'")
        where = f"{prefix}'{key}'"
        if not isinstance(item, dict) or "mean" not in item:
            raise SpecError(f"latency LUT {path}: entry {where} must be a mapping with 'mean' (ms) and "
                            f"optionally 'var' and 'count', not {item!r}")
        unknown = sorted(str(k) for k in item if k not in _ENTRY_KEYS)
        if unknown:
            raise SpecError(f"latency LUT {path}: entry {where} has unknown field(s) {', '.join(unknown)}; "
                            f"allowed: mean, var, count")
        mean = float(_number(item["mean"], f"{where} mean", path))
        var = item.get("var")
        count = item.get("count")
        entries[key] = LatencyEntry(
            mean,
            None if var is None else float(_number(var, f"{where} var", path)),
            None if count is None else int(_number(count, f"{where} count", path, integer=True)),
        )
    return entries


# Measuring a table ------------------------------------------------------------------------------


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _time_forward(module: nn.Module, x: torch.Tensor, repeats: int, device: torch.device) -> list[float]:
    """Per-call forward times in ms (CUDA synchronised before and after each call)."""
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    times = []
    with torch.no_grad():
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            module(x)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    return times


def _round_sizes(repeats: int, rounds: int) -> list[int]:
    """`repeats` timings split over at most `rounds` rounds, as evenly as possible."""
    rounds = max(1, min(rounds, repeats))
    return [repeats // rounds + (1 if r < repeats % rounds else 0) for r in range(rounds)]


def measure_latency_table(items: Iterable[tuple[str, Callable[[], nn.Module], Sequence[int]]],
                          device: torch.device | str = "cpu", repeats: int = 100, warmup: int = 10,
                          threads: int | None = None, source: str | None = None, rounds: int = 10) -> LatencyTable:
    """Time each (key, module_factory, input_shape) on `device` and return the table.

    Each module is built once (a repeated key is measured once; its factory is not called
    again), put in eval mode on `device` and run under no_grad on a random batch of
    `input_shape` (the batch dimension included): `warmup` untimed calls each, then `repeats`
    timed ones. The timings are taken in `rounds` interleaved passes over all the blocks, so a
    transient slowdown of the machine (another job, a frequency change) spreads over every entry
    instead of inflating the few blocks timed while it lasted. The median is stored as the
    entry's mean, with the variance (population, ms^2) and count of the timings. `threads`
    intra-op threads (default: torch's current setting) are used and recorded with the device name."""
    for name, value, least in (("repeats", repeats, 1), ("warmup", warmup, 0), ("rounds", rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            kind = "positive" if least else "non-negative"
            raise SpecError(f"measure_latency_table: {name} must be a {kind} integer, not {value!r}")
    device = torch.device(device)
    threads = threads or torch.get_num_threads()
    shapes: dict[str, tuple[int, ...]] = {}
    blocks: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    generator = torch.Generator().manual_seed(0)
    with _torch_threads(threads):
        for key, factory, input_shape in items:
            shape = tuple(int(s) for s in input_shape)
            if key in shapes:
                if shapes[key] != shape:
                    raise SpecError(f"measure_latency_table: key '{key}' is given with input shapes "
                                    f"{shapes[key]} and {shape}; one key must name one block")
                continue
            shapes[key] = shape
            module = factory().to(device).eval()
            param = next(module.parameters(), None)
            dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
            x = torch.randn(shape, generator=generator, dtype=dtype).to(device)
            with torch.no_grad():
                for _ in range(warmup):
                    module(x)
            blocks[key] = (module, x)
        times: dict[str, list[float]] = {key: [] for key in blocks}
        for size in _round_sizes(repeats, rounds):
            for key, (module, x) in blocks.items():
                times[key] += _time_forward(module, x, size, device)
    entries = {key: LatencyEntry(statistics.median(t), statistics.pvariance(t), len(t)) for key, t in times.items()}
    batches = sorted({s[0] for s in shapes.values() if s})
    return LatencyTable(
        entries, device_name(device),
        source or (f"measured on {device} with nas_impl.metrics.latency_lut (torch {torch.__version__}, "
                   f"batch {', '.join(map(str, batches))}, median of {repeats} timings in "
                   f"{len(_round_sizes(repeats, rounds))} interleaved rounds after {warmup} warm-up)"),
        threads=threads, statistic="median")


# Expected latency and the loss -----------------------------------------------------------------


def network_latency(table: LatencyTable, keys: Iterable[str | None]) -> float:
    """Latency (ms) of a derived network: the sum of its blocks' LUT values (None = a Zero /
    skipped block, 0)."""
    return float(sum(table.lookup(k) for k in keys if k is not None))


def expected_latency(table: LatencyTable, fixed_keys: Iterable[str | None],
                     edges: Iterable[tuple[torch.Tensor, Sequence[str | None]]]) -> torch.Tensor:
    """E[latency] (ms) = sum of the fixed blocks' LUT values + for each mixed edge
    sum_j p_j * LUT(key_j), where p is that edge's probability vector (autograd is kept, so
    dE/dp_j = LUT(key_j)) and a None key is a Zero op contributing 0."""
    fixed = network_latency(table, fixed_keys)
    total: torch.Tensor | None = None
    for i, (probs, keys) in enumerate(edges):
        keys = list(keys)
        if probs.dim() != 1 or probs.numel() != len(keys):
            raise SpecError(f"expected_latency: edge {i} has {len(keys)} op keys but probabilities of shape "
                            f"{tuple(probs.shape)}; give one probability per candidate op")
        dtype = probs.dtype if probs.is_floating_point() else torch.float32
        lat = torch.tensor([0.0 if k is None else table.lookup(k) for k in keys], dtype=dtype, device=probs.device)
        term = (probs * lat).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.tensor(fixed)
    return total + fixed


# name -> (parameter defaults; None = required)
LOSS_FORMS: dict[str, dict[str, float | None]] = {
    "mul#log": {"alpha": 0.2, "beta": 0.3},
    "add#linear": {"lam": 0.1},
    "add": {"lam": None},
}


def latency_loss(ce: torch.Tensor, expected: torch.Tensor | float, ref: float | None, form: str = "mul#log",
                 **params: float) -> torch.Tensor:
    """The architecture loss from the cross-entropy `ce` and the expected latency.

    - "mul#log" (official default): alpha * ce * (log(E) / log(ref)) ** beta; alpha 0.2 and
      beta 0.3 as the official argparse (`--grad_reg_loss_alpha/beta`; the function defaults
      inside `add_regularization_loss`, 1 and 0.6, are always overridden). E and ref must be
      on the same side of 1 (in ms: both > 1 ms), or the power of a negative ratio is NaN.
    - "add#linear" (official): ce + lam * (E - ref) / ref; lam 0.1 as the argparse
      (`--grad_reg_loss_lambda`; the function default 0.2 is overridden).
    - "add" (the paper's main-text form, Loss_CE + lambda_2 * E[latency]): ce + lam * E; `ref`
      is unused. The paper's lambda_2 is not known, so `lam` must be given. The paper's
      weight-decay term lambda_1 ||w||^2 belongs to the weight optimiser, not here.
    """
    if form not in LOSS_FORMS:
        raise SpecError(f"latency loss form {form!r} is unknown: use one of {', '.join(LOSS_FORMS)}")
    defaults = LOSS_FORMS[form]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise SpecError(f"latency loss {form!r} takes {', '.join(defaults)}, not {', '.join(unknown)}")
    values = {**defaults, **params}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise SpecError(f"latency loss {form!r} needs {', '.join(missing)} (the paper does not give its value)")
    if not torch.is_tensor(expected):
        expected = torch.as_tensor(float(expected), dtype=ce.dtype, device=ce.device)
    if form == "add":
        return ce + values["lam"] * expected
    if ref is None or isinstance(ref, bool) or not math.isfinite(ref) or ref <= 0:
        raise SpecError(f"latency loss {form!r} needs a positive reference latency, not {ref!r}")
    if form == "mul#log":
        if ref == 1:
            raise SpecError("latency loss 'mul#log' divides by log(ref): the reference cannot be 1")
        return values["alpha"] * ce * (torch.log(expected) / math.log(ref)) ** values["beta"]
    return ce + values["lam"] * (expected - ref) / ref
