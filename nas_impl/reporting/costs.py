"""What the workflow cost: seconds and peak memory per paper and rule, from Snakemake benchmark files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

COST_COLUMNS = ["paper", "rule", "jobs", "seconds", "max_rss_mb"]


@dataclass
class Costs:
    per_stage: pd.DataFrame  # COST_COLUMNS, one row per (paper, rule)
    total_seconds: float = 0.0
    max_rss_mb: float = float("nan")
    unreadable: list[Path] = field(default_factory=list)


def _read_benchmark(path: Path) -> pd.DataFrame:
    # Snakemake writes "-" or "NA" where it could not measure a value.
    frame = pd.read_csv(path, sep="\t", na_values=["-", "NA", ""])
    if "s" not in frame.columns:
        raise ValueError(f"{path}: no 's' column")
    seconds = pd.to_numeric(frame["s"], errors="coerce")
    rss = pd.to_numeric(frame.get("max_rss", pd.Series(index=frame.index, dtype=float)), errors="coerce")
    return pd.DataFrame({"seconds": seconds, "max_rss_mb": rss})


def _stage(path: Path, benchmarks_dir: Path) -> tuple[str, str]:
    """(paper, rule) from benchmarks/<paper>/<rule>/<job>.tsv; shallower files still get counted."""
    parts = path.relative_to(benchmarks_dir).parts
    paper = parts[0] if len(parts) >= 2 else "(unknown)"
    rule = parts[1] if len(parts) >= 3 else "(unknown)"
    return paper, rule


def collect_costs(benchmarks_dir: Path) -> Costs:
    benchmarks_dir = Path(benchmarks_dir)
    frames, unreadable = [], []
    for path in sorted(benchmarks_dir.rglob("*.tsv")):
        try:
            frame = _read_benchmark(path)
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            unreadable.append(path)
            continue
        frame["paper"], frame["rule"] = _stage(path, benchmarks_dir)
        frames.append(frame)
    if not frames:
        return Costs(pd.DataFrame(columns=COST_COLUMNS), unreadable=unreadable)
    jobs = pd.concat(frames, ignore_index=True)
    per_stage = (
        jobs.groupby(["paper", "rule"], sort=True)
        .agg(jobs=("seconds", "size"), seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max"))
        .reset_index()[COST_COLUMNS]
    )
    return Costs(per_stage, float(jobs["seconds"].sum()), float(jobs["max_rss_mb"].max()), unreadable)
