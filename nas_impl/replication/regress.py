"""Regression check of results tables against committed reference tables.

Every row of every `tables/*.csv` under the reference directory must exist in the results with
the same verdict and a reproduced mean within tolerance:

- architecture metrics of a fixed architecture are exact functions of it (relative 1e-6);
- everything that depends on training numerics (accuracy; the architecture metrics of a searched
  shape, whose verdict is "not comparable at this scale") moves with the seed, the CPU's kernels
  and the thread count. The reference records each row's spread over several seeds
  (`make reference`), and the tolerance follows from it: K_SIGMA standard errors of the
  difference between the two means, `K_SIGMA * std * sqrt(1/n_ref + 1/n_new)`, but never less
  than a floor (accuracy: `accuracy_floor` points, SEARCHED_ACCURACY_FLOOR for a network trained on
  a searched shape; searched shapes: SEARCHED_FLOOR relative, since
  a short search's shape depends on the CPU's kernels more than its seed spread shows).
  A reference row of one seed has no spread: the floor alone applies.

Latency is a fact about the machine, not the code: a latency row must have a value where the
reference has one (and none where it has none), but neither its value nor its verdict (an order
of measured latencies) is compared.

The reference folder also holds `environment.csv`, where its runs ran (versions, device, threads);
`regress` prints both environments next to the differences when they are not the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nas_impl.errors import NasReproError
from nas_impl.replication.compare import NOT_COMPARABLE
from nas_impl.replication.published import ARCHITECTURE_METRICS, LATENCY_METRICS

KEY = ["paper", "table", "model", "metric"]
K_SIGMA = 4.0
# A smoke search's shape moves more between CPUs than between seeds on one CPU (measured for TAS's
# one-epoch ResNet-20 search: 21.73M MACs, std 0.52M over 3 seeds; 24.74M with oneDNN capped to
# AVX2; 26.74M on the machine that made the first reference): at least 25% of its MACs.
SEARCHED_FLOOR = 0.25
# The accuracy of a network trained on a searched shape moves with that shape: the smoke TAS
# ResNet-20 searched + KD acc_drop was 13.57 points (std 0.115 over 3 seeds) on the Intel Xeon
# that made the reference and 10.80 on an AMD EPYC. At least this many points, beside the floor.
SEARCHED_ACCURACY_FLOOR = 4.0
EXACT = 1e-6
ENVIRONMENT_FILE = "environment.csv"


@dataclass(frozen=True)
class Difference:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def tolerance(metric: str, verdict: str, ref_mean: float, ref_std: float, ref_n: float, new_n: float,
              accuracy_floor: float, searched_shape: bool = False) -> float:
    """How far the new mean may lie from the reference's (see the module docstring);
    `searched_shape`: the row's network is a searched shape (compare's `searched` column)."""
    searched = verdict == NOT_COMPARABLE
    if metric in ARCHITECTURE_METRICS and not searched:
        return EXACT * abs(ref_mean)
    if metric in ARCHITECTURE_METRICS:
        floor = SEARCHED_FLOOR * abs(ref_mean)
    else:
        floor = max(accuracy_floor, SEARCHED_ACCURACY_FLOOR) if searched_shape else accuracy_floor
    if not (ref_n > 1 and math.isfinite(ref_std)):
        return floor
    return max(floor, K_SIGMA * ref_std * math.sqrt(1.0 / ref_n + 1.0 / max(new_n, 1.0)))


def _searched(row: Any) -> bool:
    """Whether a merged row's network is a searched shape: the new table says so (tables made before
    the column existed, such as an older reference, do not)."""
    value = getattr(row, "searched_new", getattr(row, "searched", False))
    return str(value).strip().lower() == "true"


def _same(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise NasReproError(f"{path} is not a readable table ({err})") from None
    missing = [c for c in KEY + ["verdict", "reproduced_mean", "reproduced_std", "n"] if c not in frame.columns]
    if missing:
        raise NasReproError(f"{path} lacks column(s) {missing}: is it a nasrepro compare table?")
    return frame


def compare_tables(results: Path, reference: Path, relative: Path, accuracy_floor: float) -> list[Difference]:
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
        if row.metric in LATENCY_METRICS:
            if math.isnan(row.reproduced_mean_ref) != math.isnan(row.reproduced_mean_new):
                state = "no value" if math.isnan(row.reproduced_mean_new) else "a value"
                diffs.append(Difference(where, f"latency now has {state}, the reference "
                                               f"{'none' if math.isnan(row.reproduced_mean_ref) else 'one'}"))
            continue
        if row.verdict_ref != row.verdict_new:
            diffs.append(Difference(where, f"verdict {row.verdict_ref!r} -> {row.verdict_new!r}"))
        tol = tolerance(row.metric, row.verdict_ref, row.reproduced_mean_ref, row.reproduced_std_ref, row.n_ref,
                        row.n_new, accuracy_floor, _searched(row))
        if not _same(row.reproduced_mean_ref, row.reproduced_mean_new, tol):
            delta = row.reproduced_mean_new - row.reproduced_mean_ref
            spread = f", reference {row.reproduced_std_ref:.3g} std over {row.n_ref:.0f} seeds" if row.n_ref > 1 else ""
            diffs.append(Difference(where, f"{row.reproduced_mean_ref:.6g} -> {row.reproduced_mean_new:.6g} "
                                           f"(change {delta:+.4g}, tolerance {tol:.4g}{spread})"))
    return diffs


def regress(results: str | Path, reference: str | Path, accuracy_floor: float = 2.0) -> list[Difference]:
    results, reference = Path(results), Path(reference)
    tables = sorted(p.relative_to(reference) for p in reference.rglob("tables/*.csv"))
    if not tables:
        raise NasReproError(f"no reference tables (*/tables/*.csv) under {reference}: make one with `make reference`")
    return [d for relative in tables for d in compare_tables(results, reference, relative, accuracy_floor)]


def environment_summary(values: pd.DataFrame) -> dict[str, str]:
    """{field: "value (runs), ..."} of an Environment table (nas_impl.reporting.environment)."""
    return {field: ", ".join(f"{v} ({r})" for v, r in zip(group["value"], group["runs"]))
            for field, group in values.groupby("field", sort=False)}


def environment_differences(results: Path, reference: Path) -> list[str]:
    """Lines `field: reference -> results` for every field whose values differ ([] when the same or
    when the reference records no environment)."""
    from nas_impl.reporting.environment import collect_environment

    path = Path(reference) / ENVIRONMENT_FILE
    if not path.is_file():
        return [f"(the reference records no environment: {path} is missing)"]
    old = environment_summary(pd.read_csv(path, dtype=str).astype({"runs": int}))
    new = environment_summary(collect_environment(Path(results)).values)
    return [f"{field}: {old.get(field, '(none)')} -> {new.get(field, '(none)')}"
            for field in [*old, *(f for f in new if f not in old)] if old.get(field) != new.get(field)]
