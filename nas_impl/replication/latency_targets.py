"""Searched nets against the latency their search aimed at, on the device the workflow ran on.

A latency-aware search (ProxylessNAS with `hardware: latency`) steers its shape by a lookup table:
the net's latency is predicted as the sum of its blocks' timings (`latency_table.yaml`), and the
search trades accuracy against that prediction relative to a target (`ref_value`). Whether the
derived net is as fast as the table says, and as fast as the target, is a question about the whole
net on a real device: the `measure_latency` rule times it end to end (`latency.json` of the run),
and this module sets the three numbers side by side, one row per searched experiment and seed:

- target_ms: the search's `ref_value` (the space's mean latency under uniform probabilities when
  the recipe leaves it unset);
- predicted_ms: the lookup table's latency of the derived net (search.json's cost of its shape);
- measured_ms: the median forward time of the derived net, measured by `measure_latency`;
- prediction_error_pct = 100 (measured / predicted - 1): how far the table's sum is from the net;
- measured_vs_target_pct = 100 (measured / target - 1): negative when the net beats the target.

No verdict: the paper publishes no target of these runs, and a lookup table measured on another
device than the net (a user-supplied file, another thread count) is flagged in the note, not judged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from nas_impl.replication.compare import read_result_json
from nas_impl.replication.manifest import Replication

COLUMNS = ["paper", "experiment", "search", "seed", "target_ms", "predicted_ms", "measured_ms", "prediction_error_pct",
           "measured_vs_target_pct", "device", "threads", "batch_size", "table_device", "table_threads", "note"]
TABLE_SUMMARY = "latency.json"  # the search's `latency` stage: where its lookup table came from


def _read(path: Path) -> dict[str, Any] | None:
    return read_result_json(path) if path.is_file() else None


def _percent(value: float, reference: float) -> float:
    return 100.0 * (value / reference - 1.0) if reference else math.nan


def _row(rep: Replication, experiment: str, seed: int, results_dir: Path) -> dict[str, Any] | None:
    exp = rep.experiments[experiment]
    search_dir = results_dir / "search" / exp.search / f"seed{seed}"
    found = _read(search_dir / "search.json")
    if found is None or found.get("details", {}).get("hardware") != "latency":
        return None  # not run yet, or a MACs target (nothing to time against)
    target = found["details"]["ref_value"]
    shape = found["targets"][exp.search_target or found["selected"]]
    predicted = shape["details"]["cost"]
    table = _read(search_dir / TABLE_SUMMARY) or {}
    row = {"paper": rep.paper, "experiment": experiment, "search": exp.search, "seed": seed, "target_ms": target,
           "predicted_ms": predicted, "measured_ms": math.nan, "prediction_error_pct": math.nan,
           "measured_vs_target_pct": math.nan, "device": "", "threads": math.nan, "batch_size": math.nan,
           "table_device": table.get("device", ""), "table_threads": table.get("threads", math.nan), "note": ""}
    timed = _read(results_dir / experiment / f"seed{seed}" / "latency.json")
    if timed is None:
        row["note"] = "the derived net's latency is not measured yet (the measure_latency rule)"
        return row
    latency = timed["latency"]
    measured = latency["median_ms"]
    row.update(measured_ms=measured, prediction_error_pct=_percent(measured, predicted),
               measured_vs_target_pct=_percent(measured, target), device=latency.get("device_name", latency["device"]),
               threads=latency.get("threads", math.nan), batch_size=latency.get("batch_size", math.nan))
    row["note"] = _mismatch(table, latency)
    return row


def _mismatch(table: dict[str, Any], latency: dict[str, Any]) -> str:
    """Why the table's prediction and this measurement are not like for like, if they are not."""
    problems = []
    if not str(table.get("source", "")).startswith("measured"):
        problems.append(f"the lookup table was not measured here ({table.get('source', 'no latency.json')})")
    elif table.get("device") != latency.get("device_name"):
        problems.append(f"the table was measured on {table.get('device')}, the net on {latency.get('device_name')}")
    for key, name in (("threads", "threads"), ("batch", "batch_size")):
        if table.get(key) is not None and table.get(key) != latency.get(name):
            problems.append(f"the table used {key} {table.get(key)}, the measurement {latency.get(name)}")
    return "; ".join(problems)


def latency_targets(rep: Replication, results_dir: str | Path, experiments: list[str],
                    seeds: list[int]) -> pd.DataFrame:
    """One row per latency-targeted searched experiment and seed whose search has finished."""
    rows = [_row(rep, experiment, seed, Path(results_dir)) for experiment in experiments for seed in seeds]
    return pd.DataFrame([row for row in rows if row is not None], columns=COLUMNS)
