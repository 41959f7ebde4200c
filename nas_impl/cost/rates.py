"""Rates: what turns work into seconds on one device, from earlier runs or a calibration.

In order: a finished training's `train_log.csv` (images or tokens per second, median over epochs)
of the same network and input on a device of the same name; a finished search stage's benchmark
seconds over the work its recorded recipe implies; the calibration cache that `nasrepro cost
--calibrate` writes (nas_impl/cost/calibrate.py); else unknown.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas_impl.cost.jobs import HOST_RULES, Job, recipe_key, search_work
from nas_impl.errors import NasReproError
from nas_impl.methods import method_info
from nas_impl.methods.work_units import DATA_SIZES, Network
from nas_impl.replication.manifest import SCALES, Replication

CALIBRATION_FILE = "cost/calibration.json"  # under the results folder
CALIBRATION_FORMAT = "nasrepro-cost-calibration-v1"

# A search stage's per-epoch log: its `epoch_s` sum outlasts a resumed job's benchmark (its last attempt only).
STAGE_LOGS = {"search": "search_log.csv", "supernet": "supernet_log.csv", "slim": "slim_log.csv"}


def same_device(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and " ".join(a.split()).lower() == " ".join(b.split()).lower()


# -- what earlier runs measured -----------------------------------------------------------------------
@dataclass(frozen=True)
class MeasuredRun:
    """One finished training: its network, device and median rate."""

    spec: dict[str, Any]
    input: str
    device: str
    rate: float
    unit: str
    threads: int | None
    path: str


@dataclass(frozen=True)
class MeasuredStage:
    """One finished search stage: its seconds and the work its recipe implies."""

    paper: str
    search: str
    method: str
    stage: str
    network_key: str
    device: str
    seconds: float
    work: float | None
    recipe_key: str
    path: str


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _column(path: Path, name: str, delimiter: str = ",") -> list[float]:
    """The positive finite numbers of one column of a CSV (TSV) file; [] when there is none."""
    try:
        with path.open(newline="") as f:
            values = [row.get(name) for row in csv.DictReader(f, delimiter=delimiter)]
    except (OSError, csv.Error):
        return []
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and x > 0:
            out.append(x)
    return out


def scale_dirs(results: Path) -> list[Path]:
    return [results / scale for scale in SCALES if (results / scale).is_dir()]


def measured_runs(results: Path) -> list[MeasuredRun]:
    """Every finished training under results/<scale>/ (a metrics.json beside a train_log.csv)."""
    runs = []
    for scale_dir in scale_dirs(results):
        for metrics in sorted(scale_dir.rglob("metrics.json")):
            log = metrics.with_name("train_log.csv")
            data = _read_json(metrics)
            if data is None or not log.is_file():
                continue
            run, spec, record = data.get("run") or {}, data.get("spec"), data.get("record") or {}
            dataset = record.get("dataset")
            if not isinstance(spec, dict) or dataset not in DATA_SIZES or not run.get("device_name"):
                continue
            unit = DATA_SIZES[dataset].unit
            rates = _column(log, f"{unit}_per_s")
            if rates:
                runs.append(MeasuredRun(spec, DATA_SIZES[dataset].input, run["device_name"], statistics.median(rates),
                                        unit, run.get("threads"), str(metrics.parent)))
    return runs


def _benchmark_seconds(path: Path) -> float | None:
    values = _column(path, "s", "\t") if path.is_file() else []  # Snakemake's benchmark: seconds first
    return max(values) if values else None


def _stage_device(folder: Path, summary: str) -> str | None:
    for name in (summary, "search.json"):
        data = _read_json(folder / name)
        if data is None:
            continue
        run = data.get("run") or {}
        if run.get("device_name"):
            return run["device_name"]
        device = data.get("device")
        if isinstance(device, str) and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            return device
    return None


def measured_stages(results: Path, replications: Mapping[str, Replication]) -> list[MeasuredStage]:
    """Every finished search stage under results/<scale>/ of a search the manifests still have."""
    out = []
    for scale_dir in scale_dirs(results):
        scale = scale_dir.name
        for paper, rep in replications.items():
            for search, entry in rep.searches.items():
                folder = scale_dir / paper / "search" / search
                recipe_file = folder / "recipe.yaml"
                if not recipe_file.is_file() or scale not in entry.scales:
                    continue
                try:
                    recipe = method_info(entry.method).recipe_from_dict(yaml.safe_load(recipe_file.read_text()),
                                                                        str(recipe_file))
                    dataset = rep.search_run_dataset(search, scale)
                    works = {sw.stage: sw for sw in search_work(rep, search, scale, dataset, recipe)}
                except (NasReproError, OSError, yaml.YAMLError):
                    continue
                stages = method_info(entry.method).stages
                for seed_dir in sorted(folder.glob("seed*")):
                    seed = seed_dir.name.removeprefix("seed")
                    for i, stage in enumerate(stages):
                        if not (seed_dir / stage.summary).is_file():
                            continue
                        device = _stage_device(seed_dir, stage.summary)
                        rule = "search" if i == len(stages) - 1 else stage.name
                        bench = scale_dir / "benchmarks" / paper / rule / f"{search}-seed{seed}.tsv"
                        seconds = _benchmark_seconds(bench)
                        logged = sum(_column(seed_dir / STAGE_LOGS.get(stage.name, ""), "epoch_s")) \
                            if stage.name in STAGE_LOGS else 0.0
                        seconds = max(seconds or 0.0, logged) or None
                        if device is None or seconds is None:
                            continue
                        sw = works[stage.name]
                        out.append(MeasuredStage(paper, search, entry.method, stage.name, sw.network.key, device,
                                                 seconds, sw.work, recipe_key(recipe), str(seed_dir)))
    return out


def host_seconds(results: Path) -> dict[str, tuple[float, int]]:
    """rule -> (median seconds of a job, benchmark files) over results/<scale>/benchmarks/ of every scale."""
    seen: dict[str, list[float]] = {}
    for scale_dir in scale_dirs(Path(results)):
        bench = scale_dir / "benchmarks"
        for rule in HOST_RULES:
            for path in bench.rglob(f"{rule}/*.tsv"):
                seconds = _benchmark_seconds(path)
                if seconds is not None:
                    seen.setdefault(rule, []).append(seconds)
    return {rule: (statistics.median(v), len(v)) for rule, v in seen.items()}


# -- rates --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    value: float | None  # units per second (a plain training step's, or a search's own)
    source: str  # measured, calibrated, unknown
    detail: str


UNKNOWN = Rate(None, "unknown", "no measured run or calibration of this network on this device")


def load_calibration(results: Path) -> dict[str, dict[str, Any]]:
    """device name -> network key -> calibration entry (empty when there is no cache)."""
    data = _read_json(Path(results) / CALIBRATION_FILE)
    if data is None or data.get("format") != CALIBRATION_FORMAT:
        return {}
    return data.get("devices") or {}


@dataclass
class Rates:
    device: str
    runs: list[MeasuredRun] = field(default_factory=list)
    stages: list[MeasuredStage] = field(default_factory=list)
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> key -> entry

    @classmethod
    def from_results(cls, device: str, results: Path, replications: Mapping[str, Replication]) -> Rates:
        results = Path(results)
        return cls(device, measured_runs(results), measured_stages(results, replications), load_calibration(results))

    def calibrated(self) -> dict[str, Any]:
        for name, entries in self.calibration.items():
            if same_device(name, self.device):
                return entries
        return {}

    def plain(self, network: Network) -> Rate:
        """A plain training step's rate of `network` on the device."""
        runs = [r for r in self.runs if same_device(r.device, self.device) and network.matches(r.spec, r.input)]
        if runs:
            value = statistics.median(r.rate for r in runs)
            where = sorted({r.path for r in runs})
            threads = sorted({r.threads for r in runs if r.threads})
            return Rate(value, "measured", f"median of {len(runs)} run(s): {', '.join(where[:2])}"
                                           f"{' ...' if len(where) > 2 else ''}"
                                           f"{f' ({threads[0]} threads)' if len(threads) == 1 else ''}")
        entry = self.calibrated().get(network.key)
        if entry and entry.get("rate"):
            return Rate(float(entry["rate"]), "calibrated",
                        f"{entry.get('steps', '?')} steps at batch {entry.get('batch', '?')}"
                        f"{', bf16' if entry.get('bf16') else ''}, {entry.get('threads', '?')} threads, "
                        f"{entry.get('measured_at', '')[:10]}")
        return UNKNOWN

    def stage(self, job: Job) -> Rate | None:
        """A search stage's own measured rate (work per second; or jobs per second for a stage whose
        work is not projected, from a run of the same recipe), or None."""
        found = [m for m in self.stages if m.method == job.method and m.stage == job.stage
                 and m.network_key == job.network.key and same_device(m.device, self.device)]
        if job.work is None:
            found = [m for m in found if m.recipe_key == job.recipe_key]
            if found:
                seconds = statistics.median(m.seconds for m in found)
                return Rate(1 / seconds, "measured", f"{len(found)} run(s) of this recipe: {found[0].path}")
            return None
        found = [m for m in found if m.work]
        if not found:
            return None
        value = statistics.median(m.work / m.seconds for m in found)
        return Rate(value, "measured", f"search stage: median of {len(found)} run(s): {found[0].path}")
