"""Published vs reproduced: one comparison table per published table.

For every published row, the experiment that claims it is looked up, its per-seed results are
read (`<experiment>/seed<k>/eval.json` for accuracy, `arch_metrics.json` for architecture
metrics), converted to the row's unit, and judged:

- architecture metrics (MACs, params, memory) are deterministic functions of the architecture,
  so they are compared at every scale, within `tolerances.architecture` (relative);
- accuracy (within `tolerances.accuracy`, points) and a language model's perplexity (within
  `tolerances.perplexity`, relative) are compared only at the scales in `accuracy_scales` and only
  when the run used the paper's dataset; elsewhere the verdict is "not comparable at this scale";
- latency depends on the hardware and is never judged against the paper's device in milliseconds;
  latency on a kind of device (`latency_cpu_ms`, `latency_gpu_ms`: a table comparing nets across
  devices, ProxylessNAS Table 3) is measured where the run is (`latency.json`) and judged as an
  order: among the nets of one table measured under the same claim label, a row is reproduced
  when its rank by measured latency equals its rank by the published latency on that kind;
- a search cost (GPU hours), and the other numbers of REPORTED_METRICS (e.g. MemNAS's memory savings
  relative to its own unreleased net), are reported, never judged: their verdict is "not run", with the reason;
- a published value that contradicts its own table (the note's `[inconsistent: why]`, e.g. a deeper
  net of one family listed with less memory) is measured and shown beside ours, with the verdict
  "published value inconsistent" and the why, not "not reproduced";
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
from nas_impl.replication.published import (
    ARCHITECTURE_METRICS,
    LATENCY_ON,
    QUALITY_METRICS,
    RELATIVE_METRICS,
    RELATIVE_QUALITY_METRICS,
    REPORTED_METRICS,
    UNITS,
    PublishedRow,
)

COLUMNS = ["paper", "table", "dataset", "model", "metric", "unit", "published", "reproduced_mean", "reproduced_std",
           "n", "delta", "tolerance", "verdict", "reason", "scale", "run_dataset", "experiment", "source", "note",
           "searched"]
REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
INCONSISTENT = "published value inconsistent"
NOT_COMPARABLE, NOT_RUN = "not comparable at this scale", "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONSISTENT, NOT_COMPARABLE, NOT_RUN)


def _latency_on(kind: str):
    """Read latency.json's median when it was measured on a device of this kind (else no value)."""
    def read(result: dict[str, Any]) -> float:
        if result["latency"]["device"].split(":")[0] != kind:
            raise KeyError(kind)
        return result["latency"]["median_ms"]
    return read


# metric -> (result file, how to read the value in base units from it)
READERS = {
    "top1": ("eval.json", lambda r: r["top1"]),
    "top1_err": ("eval.json", lambda r: 100.0 - r["top1"]),
    "top5": ("eval.json", lambda r: r["top5"]),
    "top5_err": ("eval.json", lambda r: 100.0 - r["top5"]),
    "ppl": ("eval.json", lambda r: r["ppl"]),  # a language model's test perplexity
    # ... and its validation perplexity, which training monitors (of the weights it keeps: metrics.json's `ppl`)
    "valid_ppl": ("metrics.json", lambda r: r["ppl"]),
    "macs": ("arch_metrics.json", lambda r: r["macs"]),
    "params": ("arch_metrics.json", lambda r: r["params"]),
    "params_no_norm": ("arch_metrics.json", lambda r: r["params_no_norm"]),
    "peak_activation_mb": ("arch_metrics.json", lambda r: r["peak_activation_bytes"]),
    "memory_mb": ("arch_metrics.json", lambda r: r["total_memory_bytes"]),
    # MemNAS's "Params Memory": #params x 4 B, counted as its sources count (TF-slim style, and the code's
    # cal_weight: no BN), i.e. params_no_norm in fp32
    "params_memory_mb": ("arch_metrics.json", lambda r: 4 * r["params_no_norm"]),
    "latency_ms": ("arch_metrics.json", lambda r: r["latency"]["median_ms"]),
    **{metric: ("latency.json", _latency_on(kind)) for metric, kind in LATENCY_ON.items()},
    # relative to the baseline experiment's result of the same seed (`base`)
    "acc_drop": ("eval.json", lambda r, base: base["top1"] - r["top1"]),
    "top5_drop": ("eval.json", lambda r, base: base["top5"] - r["top5"]),
    "macs_reduction": ("arch_metrics.json", lambda r, base: 100.0 * (1.0 - r["macs"] / base["macs"])),
}


def read_result_json(path: Path) -> dict[str, Any]:
    """A result file a rule wrote (eval.json, search.json, ...), or one error naming it and the fix."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise NasReproError(f"{path} is not valid JSON ({err}); delete it and rerun the rule that writes it") from None


def seed_values(row: PublishedRow, run_dir: Path, seeds: list[int],
                baseline_dir: Path | None = None) -> tuple[list[float], str | None]:
    """The row's metric per seed (in the row's unit) and the dataset the runs used.

    Relative metrics (acc_drop, macs_reduction) also read `baseline_dir`'s result of the same seed.
    """
    if row.metric not in READERS or (row.metric in RELATIVE_METRICS and baseline_dir is None):
        return [], None
    filename, read = READERS[row.metric]
    values, dataset = [], None
    for seed in seeds:
        path = run_dir / f"seed{seed}" / filename
        base_path = baseline_dir / f"seed{seed}" / filename if baseline_dir is not None else None
        if not path.is_file() or (row.metric in RELATIVE_METRICS and not base_path.is_file()):
            continue
        result = read_result_json(path)
        try:
            value = read(result, read_result_json(base_path)) if row.metric in RELATIVE_METRICS else read(result)
            values.append(value / UNITS[row.unit])
        except KeyError:
            continue  # e.g. no latency measured for this run
        dataset = result.get("dataset", dataset)
    return values, dataset


def search_band(search_dir: Path, target: str | None, seeds: list[int]) -> tuple[float, float] | None:
    """The MACs band a search aimed its shape at (its `target_band`: ratios of the unpruned MACs),
    when every seed's search.json records the same one (TAS does)."""
    bands = set()
    for seed in seeds:
        path = search_dir / f"seed{seed}" / "search.json"
        if not path.is_file():
            continue
        found = read_result_json(path)
        band = found.get("targets", {}).get(target or found.get("selected"), {}).get("details", {}).get("target_band")
        if band is None:
            return None
        bands.add(tuple(band))
    return bands.pop() if len(bands) == 1 else None


def band_in_row_units(row: PublishedRow, band: tuple[float, float] | None, baseline_dir: Path | None,
                      seeds: list[int]) -> tuple[float, float] | None:
    """A ratio band as the row's metric: a reduction in %, or MACs of the baseline network (as its
    arch_metrics.json counts them, at the experiment's input size) in the row's unit."""
    if band is None or row.metric not in ("macs", "macs_reduction"):
        return None
    low, high = band
    if row.metric == "macs_reduction":
        return 100.0 * (1.0 - high), 100.0 * (1.0 - low)
    paths = [baseline_dir / f"seed{seed}" / "arch_metrics.json" for seed in seeds] if baseline_dir else []
    base = [read_result_json(p)["macs"] for p in paths if p.is_file()]
    if not base:
        return None
    macs = statistics.fmean(base) / UNITS[row.unit]
    return low * macs, high * macs


def judge(row: PublishedRow, values: list[float], run_dataset: str | None, scale: str,
          rep: Replication, searched: bool = False, band: tuple[float, float] | None = None) -> dict[str, Any]:
    """A searched architecture is judged only at `rep.search_scales`, within the search tolerance,
    and against the `band` its search aimed at where it has one: a search asked for target 1 - P
    with a zero-loss band below it (TAS) has done what the paper's search does anywhere in that band,
    so its shape is compared with the band (widened by the tolerance), not with the point P."""
    out: dict[str, Any] = {"reproduced_mean": math.nan, "reproduced_std": math.nan, "n": 0, "delta": math.nan,
                           "tolerance": math.nan, "verdict": NOT_RUN}
    if not values:
        return out
    mean = statistics.fmean(values)
    out.update(reproduced_mean=mean, n=len(values), delta=mean - row.value,
               reproduced_std=statistics.stdev(values) if len(values) > 1 else math.nan)
    if row.inconsistency:
        out["verdict"] = INCONSISTENT
        return out
    if row.metric in ARCHITECTURE_METRICS:
        relative = rep.search_tolerance if searched else rep.architecture_tolerance
        out["tolerance"] = max(relative * abs(row.value), row.rounding)
        if row.other_count or (searched and scale not in rep.search_scales):
            out["verdict"] = NOT_COMPARABLE
            return out
    elif row.metric in QUALITY_METRICS:
        relative = row.metric in RELATIVE_QUALITY_METRICS
        out["tolerance"] = max(rep.perplexity_tolerance * abs(row.value) if relative else rep.accuracy_tolerance,
                               row.rounding)
        if scale not in rep.accuracy_scales or run_dataset != row.dataset:
            out["verdict"] = NOT_COMPARABLE
            return out
    else:  # latency: another device than the paper's (on a kind of device: judge_order decides)
        out["verdict"] = NOT_COMPARABLE
        return out
    if band is not None and row.metric in ARCHITECTURE_METRICS:
        inside = band[0] - out["tolerance"] <= mean <= band[1] + out["tolerance"]
        out["verdict"] = REPRODUCED if inside else NOT_REPRODUCED
        return out
    out["verdict"] = REPRODUCED if abs(out["delta"]) <= out["tolerance"] else NOT_REPRODUCED
    return out


def _not_comparable(row: PublishedRow, run_dataset: str | None, scale: str, searched: bool) -> tuple[str, str]:
    """(reason, note) of a row that is reported but not judged: the reason in words shared by many
    rows (the report counts rows per reason), the note with this row's particulars."""
    if row.metric in QUALITY_METRICS:
        return (f"{'perplexity' if row.metric in RELATIVE_QUALITY_METRICS else 'accuracy'} at {scale} scale or on "
                "another dataset",
                f"{scale} scale: trained on {run_dataset}, the paper on {row.dataset}")
    if row.metric in LATENCY_ON:
        return "an order needs two nets or more", ""  # judge_order tells which
    if row.other_count:
        return "the source counts another way", "the source counts differently (see the note); reported, not judged"
    if searched:
        return f"searched shape at {scale} scale", f"{scale} scale: the search is too short to be held to the paper's shape"
    return "latency on another device", "latency is measured on this machine, not the paper's device; reported, not judged"


def _band_note(band: tuple[float, float] | None, row: PublishedRow) -> str:
    if band is None:
        return ""
    return (f"judged against the search's target band {band[0]:.4g}-{band[1]:.4g} {row.unit} "
            f"(widened by the tolerance), not the published point")


def compare_replication(rep: Replication, results_dir: str | Path, scale: str,
                        seeds: list[int] | None = None) -> dict[str, pd.DataFrame]:
    """Comparison tables keyed by table name, for results under `results_dir` (= results/<scale>/<paper>),
    over `seeds` (default: the replication's seeds at this scale).

    A published row claimed by several experiments (a released and a searched shape, with and
    without KD) gets one line per claim, its model suffixed with the claim's label.
    """
    results_dir = Path(results_dir)
    claimants: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name, exp in rep.experiments.items():
        for claim in exp.claims:
            claimants.setdefault((claim.table, claim.model), []).append((name, claim.label))
    rows, orders = [], {}
    for row in rep.published:
        for experiment, label in claimants.get((row.table, row.model), [(None, "")]):
            rows.append(_compare_row(rep, row, experiment, label, results_dir, scale,
                                     rep.seeds[scale] if seeds is None else seeds))
            if row.metric in LATENCY_ON and rows[-1]["n"]:
                orders.setdefault((row.table, row.metric, label), []).append(rows[-1])
    for group in orders.values():
        judge_order(group)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return {name: frame[frame["table"] == name].reset_index(drop=True) for name in rep.tables}


def judge_order(rows: list[dict[str, Any]]) -> None:
    """Judge latency rows of one table, kind of device and claim label as an order (in place): each
    row is reproduced when its rank by measured latency equals its rank by the published one."""
    if len(rows) < 2:
        for row in rows:
            row["note"] = _join(row["note"], "only this net of the table was measured here; reported, not judged")
        return
    measured, published = _ranks([r["reproduced_mean"] for r in rows]), _ranks([r["published"] for r in rows])
    for row, mine, paper in zip(rows, measured, published):
        row.update(verdict=REPRODUCED if mine == paper else NOT_REPRODUCED, reason="",
                   note=_join(row["note"], f"judged as an order: fastest-first rank {mine} of {len(rows)} here, "
                                           f"{paper} in the paper"))


def _ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0] * len(values)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def measured_search_cost(search_dir: Path, seeds: list[int], scale: str) -> str:
    """This run's search time, in device-hours on the device it ran on, for the note beside a
    published search cost (a different device and, below paper scale, a smaller search)."""
    costs = []
    for seed in seeds:
        path = search_dir / f"seed{seed}" / "search.json"
        if path.is_file():
            found = read_result_json(path)
            run = found.get("run", {})
            device = run.get("device_name") or run.get("device", "?")
            threads = f", {run['threads']} threads" if run.get("threads") else ""
            costs.append(f"{found['wall_time_s'] / 3600:.3g} h on {device}{threads} (seed {seed})")
    return f"this {scale}-scale search took {'; '.join(costs)}" if costs else ""


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _compare_row(rep: Replication, row: PublishedRow, experiment: str | None, label: str, results_dir: Path,
                 scale: str, seeds: list[int]) -> dict[str, Any]:
    values, run_dataset, searched, band = [], None, False, None
    if row.metric in REPORTED_METRICS:
        reason, detail = REPORTED_METRICS[row.metric]
        if row.metric == "search_gpu_h" and experiment is not None and rep.experiments[experiment].search:
            detail = _join(detail, measured_search_cost(results_dir / "search" / rep.experiments[experiment].search,
                                                        seeds, scale))
        not_run = (reason, detail)
    elif experiment is None:
        not_run = ("no experiment claims it", "no experiment of the replication claims this row")
    elif scale not in rep.experiments[experiment].scales:
        not_run = (f"not run at {scale} scale",
                   f"experiment '{experiment}' runs at {', '.join(rep.experiments[experiment].scales)} scale only")
    elif row.metric in LATENCY_ON:
        kind = LATENCY_ON[row.metric]
        measured = any((results_dir / experiment / f"seed{seed}" / "latency.json").is_file() for seed in seeds)
        not_run = ((f"no {kind} device here", f"latency on a {kind} device is measured only where the run has one "
                                              "(mobile: never; see the note)") if measured else
                   ("results missing", f"no latency.json of experiment '{experiment}' under {results_dir}"))
        values, run_dataset = seed_values(row, results_dir / experiment, seeds)
        searched = rep.experiments[experiment].search is not None
    else:
        exp = rep.experiments[experiment]
        trained = (row.metric not in READERS or READERS[row.metric][0] not in ("eval.json", "metrics.json")
                   or exp.trained_at(scale))
        not_run = (("results missing", f"no results of experiment '{experiment}' under {results_dir}") if trained else
                   (f"measured, not trained, at {scale} scale",
                    f"experiment '{experiment}' is measured, not trained, at {scale} scale"))
        searched = exp.search is not None
        baseline_dir = results_dir / exp.baseline if exp.baseline else None
        values, run_dataset = seed_values(row, results_dir / experiment, seeds, baseline_dir)
        run_dataset = run_dataset or rep.run_dataset(experiment, scale)
        if searched and row.metric in ("macs", "macs_reduction"):
            band = band_in_row_units(row, search_band(results_dir / "search" / exp.search, exp.search_target, seeds),
                                     baseline_dir, seeds)
    judged = judge(row, values, run_dataset, scale, rep, searched, band)
    if judged["verdict"] == NOT_RUN:
        reason, detail = not_run
    elif judged["verdict"] == NOT_COMPARABLE:
        reason, detail = _not_comparable(row, run_dataset, scale, searched)
    elif judged["verdict"] == INCONSISTENT:
        reason, detail = "the published table contradicts itself", ""  # the why is in the note
    else:
        reason, detail = "", ""
    return {
        "paper": rep.paper, "table": row.table, "dataset": row.dataset,
        "model": f"{row.model} [{label}]" if label else row.model,
        "metric": row.metric, "unit": row.unit, "published": row.value, **judged, "reason": reason, "scale": scale,
        "run_dataset": run_dataset or "", "experiment": experiment or "", "source": row.source,
        "note": _join(row.note, detail, _band_note(band, row)),
        "searched": searched,  # the network is a searched shape (regress allows for its moves)
    }
