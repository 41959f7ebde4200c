"""Published vs reproduced: one comparison table per published table.

For every published row, the experiment that claims it is looked up, its per-seed results are
read (`<experiment>/seed<k>/eval.json` for accuracy, `arch_metrics.json` for architecture
metrics), converted to the row's unit, and judged:

- architecture metrics (MACs, params, memory) are deterministic functions of the architecture,
  so they are compared at every scale, within `tolerances.architecture` (relative);
- accuracy is compared only at the scales in `accuracy_scales` and only when the run used the
  paper's dataset; elsewhere the verdict is "not comparable at this scale";
- latency depends on the hardware and is never judged against the paper's device;
- a row nobody claims, or whose results are missing, is "not run".
Every tolerance also allows for the rounding of the published figure (PublishedRow.rounding).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from nas_impl.errors import NasReproError
from nas_impl.replication.manifest import Replication
from nas_impl.replication.published import ACCURACY_METRICS, ARCHITECTURE_METRICS, UNITS, PublishedRow

COLUMNS = ["paper", "table", "dataset", "model", "metric", "unit", "published", "reproduced_mean", "reproduced_std",
           "n", "delta", "tolerance", "verdict", "scale", "run_dataset", "experiment", "source", "note"]
REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
NOT_COMPARABLE, NOT_RUN = "not comparable at this scale", "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE, NOT_RUN)

# metric -> (result file, how to read the value in base units from it)
READERS = {
    "top1": ("eval.json", lambda r: r["top1"]),
    "top1_err": ("eval.json", lambda r: 100.0 - r["top1"]),
    "top5": ("eval.json", lambda r: r["top5"]),
    "top5_err": ("eval.json", lambda r: 100.0 - r["top5"]),
    "macs": ("arch_metrics.json", lambda r: r["macs"]),
    "params": ("arch_metrics.json", lambda r: r["params"]),
    "params_no_norm": ("arch_metrics.json", lambda r: r["params_no_norm"]),
    "peak_activation_mb": ("arch_metrics.json", lambda r: r["peak_activation_bytes"]),
    "memory_mb": ("arch_metrics.json", lambda r: r["total_memory_bytes"]),
    "latency_ms": ("arch_metrics.json", lambda r: r["latency"]["median_ms"]),
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise NasReproError(f"{path} is not valid JSON ({err}); delete it and rerun the rule that writes it") from None


def seed_values(row: PublishedRow, run_dir: Path, seeds: list[int]) -> tuple[list[float], str | None]:
    """The row's metric per seed (in the row's unit) and the dataset the runs used."""
    if row.metric not in READERS:
        return [], None
    filename, read = READERS[row.metric]
    values, dataset = [], None
    for seed in seeds:
        path = run_dir / f"seed{seed}" / filename
        if not path.is_file():
            continue
        result = _read_json(path)
        try:
            values.append(read(result) / UNITS[row.unit])
        except KeyError:
            continue  # e.g. no latency measured for this run
        dataset = result.get("dataset", dataset)
    return values, dataset


def judge(row: PublishedRow, values: list[float], run_dataset: str | None, scale: str,
          rep: Replication) -> dict[str, Any]:
    out: dict[str, Any] = {"reproduced_mean": math.nan, "reproduced_std": math.nan, "n": 0, "delta": math.nan,
                           "tolerance": math.nan, "verdict": NOT_RUN}
    if not values:
        return out
    mean = statistics.fmean(values)
    out.update(reproduced_mean=mean, n=len(values), delta=mean - row.value,
               reproduced_std=statistics.stdev(values) if len(values) > 1 else math.nan)
    if row.metric in ARCHITECTURE_METRICS:
        out["tolerance"] = max(rep.architecture_tolerance * abs(row.value), row.rounding)
    elif row.metric in ACCURACY_METRICS:
        out["tolerance"] = max(rep.accuracy_tolerance, row.rounding)
        if scale not in rep.accuracy_scales or run_dataset != row.dataset:
            out["verdict"] = NOT_COMPARABLE
            return out
    else:  # latency: another device than the paper's
        out["verdict"] = NOT_COMPARABLE
        return out
    out["verdict"] = REPRODUCED if abs(out["delta"]) <= out["tolerance"] else NOT_REPRODUCED
    return out


def _note(row: PublishedRow, verdict: str, run_dataset: str | None, scale: str) -> str:
    notes = [row.note] if row.note else []
    if verdict == NOT_COMPARABLE and row.metric in ACCURACY_METRICS:
        notes.append(f"{scale} scale: trained on {run_dataset}, the paper on {row.dataset}")
    return "; ".join(notes)


def compare_replication(rep: Replication, results_dir: str | Path, scale: str) -> dict[str, pd.DataFrame]:
    """Comparison tables keyed by table name, for results under `results_dir` (= results/<scale>/<paper>)."""
    results_dir = Path(results_dir)
    claimants = {(c.table, c.model): name for name, exp in rep.experiments.items() for c in exp.claims}
    rows = []
    for row in rep.published:
        experiment = claimants.get((row.table, row.model))
        values, run_dataset = [], None
        if experiment is not None and scale in rep.experiments[experiment].scales:
            values, run_dataset = seed_values(row, results_dir / experiment, rep.seeds[scale])
            run_dataset = run_dataset or rep.run_dataset(experiment, scale)
        judged = judge(row, values, run_dataset, scale, rep)
        rows.append({
            "paper": rep.paper, "table": row.table, "dataset": row.dataset, "model": row.model,
            "metric": row.metric, "unit": row.unit, "published": row.value, **judged, "scale": scale,
            "run_dataset": run_dataset or "", "experiment": experiment or "", "source": row.source,
            "note": _note(row, judged["verdict"], run_dataset, scale),
        })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return {name: frame[frame["table"] == name].reset_index(drop=True) for name in rep.tables}
