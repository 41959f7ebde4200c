"""The comparison-table format shared by plots, scorecard and report: columns, verdicts, reading."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nas_impl.replication.compare import (
    COLUMNS, INCONSISTENT, NOT_COMPARABLE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, VERDICTS,
)

TABLE_COLUMNS = tuple(COLUMNS)
NUMERIC_COLUMNS = ("published", "reproduced_mean", "reproduced_std", "n", "delta", "tolerance")

__all__ = ["INCONSISTENT", "NOT_COMPARABLE", "NOT_REPRODUCED", "NOT_RUN", "REPRODUCED", "TABLE_COLUMNS", "VERDICTS",
           "normalize_table", "read_table"]


def normalize_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with every table column present, numbers as floats and text as str ('' when empty)."""
    out = table.copy()
    for column in TABLE_COLUMNS:
        if column not in out.columns:
            out[column] = float("nan") if column in NUMERIC_COLUMNS else ""
    for column in TABLE_COLUMNS:
        if column in NUMERIC_COLUMNS:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
        else:
            out[column] = out[column].astype(object).fillna("").astype(str).str.strip()
    return out


def read_table(path: str | Path) -> pd.DataFrame:
    # Text is read verbatim: pandas would otherwise turn a model called "NA" or "None" into NaN.
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return normalize_table(raw)
