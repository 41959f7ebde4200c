"""Where the results came from: distinct versions, devices and thread counts over all training runs."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

VERSION_ORDER = ("python", "torch", "torchvision", "cuda", "cudnn", "nas_impl", "nas_impl_commit")
RUN_FIELDS = ("device", "device_name", "threads", "platform")
MISSING = "(none)"


@dataclass
class Environment:
    values: pd.DataFrame  # columns field, value, runs: one row per distinct value of each field
    run_count: int = 0
    total_wall_time_s: float = 0.0
    unreadable: list[Path] = field(default_factory=list)


def _text(value: object) -> str:
    return MISSING if value is None or value == "" else str(value)


def _run_fields(run: dict) -> dict[str, str]:
    versions = run.get("versions") or {}
    if not isinstance(versions, dict):
        versions = {}
    ordered = [k for k in VERSION_ORDER if k in versions] + sorted(k for k in versions if k not in VERSION_ORDER)
    fields = {k: _text(versions[k]) for k in ordered}
    fields.update({k: _text(run.get(k)) for k in RUN_FIELDS if k in run})
    return fields


def _wall_time(metrics: dict) -> float:
    value = metrics.get("wall_time_s", (metrics.get("run") or {}).get("wall_time_s"))
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) else 0.0


def collect_environment(scale_dir: Path) -> Environment:
    """Read the `run` object of every metrics.json under `scale_dir`; unreadable files are listed, not fatal."""
    counts: dict[str, Counter] = {}
    run_count, wall_time, unreadable = 0, 0.0, []
    for path in sorted(Path(scale_dir).rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
            run = metrics["run"]
            if not isinstance(run, dict):
                raise TypeError("run is not an object")
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(path)
            continue
        run_count += 1
        wall_time += _wall_time(metrics)
        for name, value in _run_fields(run).items():
            counts.setdefault(name, Counter())[value] += 1
    records = [
        {"field": name, "value": value, "runs": runs}
        for name, counter in counts.items()
        for value, runs in sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    ]
    values = pd.DataFrame(records, columns=["field", "value", "runs"])
    return Environment(values, run_count, wall_time, unreadable)
