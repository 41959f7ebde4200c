"""Regression check of results tables against committed reference tables.

Every row of every `tables/*.csv` under the reference directory must exist in the results
with the same verdict and a reproduced mean within tolerance: architecture metrics are exact
functions of the architecture (relative 1e-6); accuracy moves with library versions and
hardware, so it gets an absolute tolerance in points (default 2.0 at smoke scale). A searched
shape depends on training numerics too: where it is not judged ("not comparable at this
scale"), its architecture metrics get SEARCHED_RELATIVE instead of 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nas_impl.errors import NasReproError
from nas_impl.replication.compare import NOT_COMPARABLE
from nas_impl.replication.published import ARCHITECTURE_METRICS

KEY = ["paper", "table", "model", "metric"]
SEARCHED_RELATIVE = 0.05


@dataclass(frozen=True)
class Difference:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _tolerance(metric: str, reference: float, accuracy_tolerance: float, verdict: str = "") -> float:
    if metric in ARCHITECTURE_METRICS:
        return (SEARCHED_RELATIVE if verdict == NOT_COMPARABLE else 1e-6) * abs(reference)
    return accuracy_tolerance


def _same(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tolerance


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise NasReproError(f"{path} is not a readable table ({err})") from None
    missing = [c for c in KEY + ["verdict", "reproduced_mean"] if c not in frame.columns]
    if missing:
        raise NasReproError(f"{path} lacks column(s) {missing}: is it a nasrepro compare table?")
    return frame


def compare_tables(results: Path, reference: Path, relative: Path, accuracy_tolerance: float) -> list[Difference]:
    ref_path, new_path = reference / relative, results / relative
    if not new_path.is_file():
        return [Difference(str(relative), f"missing from {results} (run the workflow at this scale first)")]
    ref, new = _read(ref_path), _read(new_path)
    merged = ref.merge(new, on=KEY, how="left", suffixes=("_ref", "_new"), indicator="presence")
    diffs = []
    for row in merged.itertuples(index=False):
        where = f"{relative} {row.model} {row.metric}"
        if row.presence == "left_only":
            diffs.append(Difference(where, "row missing from the results"))
            continue
        if row.verdict_ref != row.verdict_new:
            diffs.append(Difference(where, f"verdict {row.verdict_ref!r} -> {row.verdict_new!r}"))
        tol = _tolerance(row.metric, row.reproduced_mean_ref, accuracy_tolerance, row.verdict_ref)
        if not _same(row.reproduced_mean_ref, row.reproduced_mean_new, tol):
            delta = row.reproduced_mean_new - row.reproduced_mean_ref
            diffs.append(Difference(where, f"{row.reproduced_mean_ref:.6g} -> {row.reproduced_mean_new:.6g} "
                                           f"(change {delta:+.4g}, tolerance {tol:.4g})"))
    return diffs


def regress(results: str | Path, reference: str | Path, accuracy_tolerance: float = 2.0) -> list[Difference]:
    results, reference = Path(results), Path(reference)
    tables = sorted(p.relative_to(reference) for p in reference.rglob("tables/*.csv"))
    if not tables:
        raise NasReproError(f"no reference tables (*/tables/*.csv) under {reference}: commit a reference first")
    return [d for relative in tables for d in compare_tables(results, reference, relative, accuracy_tolerance)]
