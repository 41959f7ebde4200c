"""The scorecard: every claim of every paper in one table, and how many of each verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nas_impl.io import atomic_path
from nas_impl.reporting.tables import TABLE_COLUMNS, VERDICTS, read_table

SCORECARD_COLUMNS = tuple(c for c in TABLE_COLUMNS if c not in ("run_dataset", "experiment"))
SORT_KEYS = ["paper", "table", "model", "metric"]


def build_scorecard(table_paths: list[Path]) -> pd.DataFrame:
    """Concatenate comparison tables into one row per claim, sorted by paper, table, model, metric."""
    tables = [read_table(path) for path in table_paths]
    if not tables:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in SCORECARD_COLUMNS})
    combined = pd.concat(tables, ignore_index=True)[list(SCORECARD_COLUMNS)]
    # A stable sort keeps each table's own row order among equal keys (e.g. the same model on two datasets).
    return combined.sort_values(SORT_KEYS, kind="mergesort").reset_index(drop=True)


def verdict_counts(scorecard: pd.DataFrame) -> dict[str, int]:
    """Rows per verdict: the known verdicts always (zero when absent), then any others seen."""
    seen = scorecard["verdict"].value_counts() if "verdict" in scorecard else pd.Series(dtype=int)
    counts = {verdict: int(seen.get(verdict, 0)) for verdict in VERDICTS}
    counts.update({str(verdict): int(n) for verdict, n in seen.items() if verdict not in counts})
    return counts


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
