"""`published.csv`: one row per published number, each with its source.

Values are kept as written (strings) next to their float so the comparison can allow for the
rounding of the published figure: "0.27" (M) means anything in [0.265, 0.275].
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from nas_impl.errors import SpecError

COLUMNS = ("table", "dataset", "model", "metric", "value", "unit", "source", "note")
UNITS = {"%": 1.0, "count": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "MB": 1e6, "ms": 1.0, "h": 1.0}
# The one definition of the accuracy metrics: as a paper reports them (in the order a plot prefers
# them), and relative to the unpruned baseline (points lost).
ABSOLUTE_ACCURACY_METRICS = ("top1", "top1_err", "top5", "top5_err")
ACCURACY_METRICS = {*ABSOLUTE_ACCURACY_METRICS, "acc_drop", "top5_drop"}
# memory_mb: parameters + the peak of live feature maps (MemNAS's total memory); params_memory_mb: the
# parameters alone without BN, #params x 4 bytes (MemNAS's "Params Memory" column); both in MB = 1e6 bytes.
ARCHITECTURE_METRICS = {"macs", "params", "params_no_norm", "peak_activation_mb", "memory_mb", "params_memory_mb",
                        "macs_reduction"}
# Metrics relative to the experiment's unpruned `baseline` experiment (same seed):
# acc_drop / top5_drop = baseline top-1 / top-5 minus this top-1 / top-5 (points);
# macs_reduction = 100 * (1 - MACs / baseline MACs).
RELATIVE_METRICS = {"acc_drop", "top5_drop", "macs_reduction"}
# What a trained network is judged by: accuracy (absolute tolerance, in points) and a language
# model's perplexity (relative tolerance: `tolerances.perplexity` of the published value).
RELATIVE_QUALITY_METRICS = {"ppl", "valid_ppl"}  # test and validation perplexity
QUALITY_METRICS = ACCURACY_METRICS | RELATIVE_QUALITY_METRICS
# Numbers a paper reports that the suite records but never judges, each with why: a search's cost
# in GPU hours (the suite's own search time is in search.json, on other hardware and at other
# scales), an abstract's "up to N% fewer" claims against baselines it does not name, and a table's
# memory savings relative to the paper's own searched net (MemNAS), whose architecture is not released.
REPORTED_METRICS = {
    "search_gpu_h": ("a search cost is reported, not judged",
                     "the suite records its own search time (wall_time_s) in search.json"),
    "params_reduction_claim": ("a claim against unnamed baselines is reported, not judged",
                               "the source does not say which networks the reduction is measured against"),
    "macs_reduction_claim": ("a claim against unnamed baselines is reported, not judged",
                             "the source does not say which networks the reduction is measured against"),
    "memory_savings": ("a saving relative to a net the suite cannot build is reported, not judged",
                       "the saving is (this net's memory - the MemNAS net's) / this net's, against a MemNAS net "
                       "whose architecture is not released; this net's own memory is judged in its memory_mb row"),
}
# Latency on a kind of device (torch device type; "mobile" is never one the suite runs on), for a
# table that compares nets across devices (ProxylessNAS Table 3). Absolute milliseconds depend on
# the device, so the suite judges their order among a table's nets on the kind it ran on.
LATENCY_ON = {"latency_cpu_ms": "cpu", "latency_gpu_ms": "cuda", "latency_mobile_ms": "mobile"}
LATENCY_METRICS = {"latency_ms", *LATENCY_ON}
METRICS = QUALITY_METRICS | ARCHITECTURE_METRICS | set(REPORTED_METRICS) | LATENCY_METRICS
UNITS_OF = {**{m: {"%"} for m in ACCURACY_METRICS}, "macs": {"K", "M", "G", "count"}, "params": {"K", "M", "count"},
            "params_no_norm": {"K", "M", "count"}, "peak_activation_mb": {"MB"}, "memory_mb": {"MB"},
            "params_memory_mb": {"MB"},
            **{m: {"ms"} for m in LATENCY_METRICS}, "ppl": {"count"}, "valid_ppl": {"count"}, "macs_reduction": {"%"}, "search_gpu_h": {"h"},
            "params_reduction_claim": {"%"}, "macs_reduction_claim": {"%"}, "memory_savings": {"%"}}


@dataclass(frozen=True)
class PublishedRow:
    table: str
    dataset: str
    model: str
    metric: str
    value_text: str
    unit: str
    source: str
    note: str

    @property
    def value(self) -> float:
        return float(self.value_text)

    @property
    def rounding(self) -> float:
        """Half a unit of the last digit written: the published figure's own precision."""
        decimals = len(self.value_text.split(".")[1]) if "." in self.value_text else 0
        return 0.5 * 10.0**-decimals

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.table, self.model, self.metric)

    @property
    def unverified(self) -> bool:
        return "[unverified]" in self.note

    @property
    def other_count(self) -> bool:
        """Counted under another convention (e.g. BN included in FLOPs): reported, never judged."""
        return "[other count]" in self.note

    @property
    def inconsistency(self) -> str | None:
        """Why the published value contradicts its own table, from the note's `[inconsistent: why]`
        (e.g. a deeper net of one family listed with less memory): measured and shown, but judged as
        the source's inconsistency, not as a failed reproduction."""
        found = re.search(r"\[inconsistent:\s*([^\]]+)\]", self.note)
        return found.group(1).strip() if found else None


def _row_error(path: Path, line: int, problem: str) -> SpecError:
    return SpecError(f"{path}, row {line}: {problem}")


def load_published(path: str | Path) -> list[PublishedRow]:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path} does not exist: every replication needs a published.csv ({', '.join(COLUMNS)})")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SpecError(f"{path}: missing column(s) {missing}; the header must include {', '.join(COLUMNS)}")
        rows, seen = [], {}
        for line, raw in enumerate(reader, start=2):
            rows.append(_parse_row(path, line, raw, seen))
    if not rows:
        raise SpecError(f"{path} has a header but no rows")
    return rows


def _parse_row(path: Path, line: int, raw: dict[str, str], seen: dict) -> PublishedRow:
    values = {c: (raw.get(c) or "").strip() for c in COLUMNS}
    for column in ("table", "dataset", "model", "metric", "value", "unit", "source"):
        if not values[column]:
            raise _row_error(path, line, f"column '{column}' is empty")
    if values["metric"] not in METRICS:
        raise _row_error(path, line, f"unknown metric '{values['metric']}'; known: {', '.join(sorted(METRICS))}")
    if values["unit"] not in UNITS_OF[values["metric"]]:
        allowed = ", ".join(sorted(UNITS_OF[values["metric"]]))
        raise _row_error(path, line, f"unit '{values['unit']}' does not fit metric '{values['metric']}' (use {allowed})")
    try:
        number = float(values["value"])
    except ValueError:
        raise _row_error(path, line, f"value '{values['value']}' is not a number") from None
    if not math.isfinite(number):
        raise _row_error(path, line, f"value '{values['value']}' is not finite")
    row = PublishedRow(values["table"], values["dataset"], values["model"], values["metric"], values["value"],
                       values["unit"], values["source"], values["note"])
    if row.key in seen:
        raise _row_error(path, line, f"duplicates row {seen[row.key]} (same table, model and metric)")
    seen[row.key] = line
    return row
