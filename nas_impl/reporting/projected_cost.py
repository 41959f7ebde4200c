"""What `nasrepro cost` projected for a scale (its cost.csv, nas_impl.cost): per-paper device-hours
and each search's claimed cost beside its projected one. The report's "Projected cost" section."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PRICED_RULES = ("train", "evaluate", "search_stage", "search")
NEEDED = ("rule", "stage", "paper", "job", "seeds", "device_h_per_job", "device_h", "claimed_gpu_h", "claim", "basis")
PAPER_COLUMNS = ["paper", "train_h", "evaluate_h", "search_h", "device_h", "unknown_jobs"]
SEARCH_COLUMNS = ["paper", "search", "claimed_gpu_h", "projected_h", "unknown_stages", "claim"]


@dataclass
class ProjectedCost:
    per_paper: pd.DataFrame  # PAPER_COLUMNS: device-hours on 1 device by rule (search: all its stages), all seeds
    searches: pd.DataFrame  # SEARCH_COLUMNS: one search, one seed; projected_h NaN when no stage is known
    total_h: float
    unknown_jobs: int
    devices: int | None = None  # the CSV's "total / N devices" row: ideal scaling
    devices_h: float | None = None
    devices_basis: str = ""


def _hours(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column, errors="coerce")


def read_projected_cost(path: Path) -> ProjectedCost:
    """The figures of one cost.csv; raises ValueError (or OSError) when it is not one."""
    rows = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)
    missing = [c for c in NEEDED if c not in rows.columns]
    if missing:
        raise ValueError(f"{path}: not a cost.csv of `nasrepro cost` (no {', '.join(missing)} column)")
    rows = rows.fillna("")
    jobs = rows[rows["rule"].isin(PRICED_RULES)].copy()
    jobs["hours"] = _hours(jobs["device_h"])
    jobs["seeds_n"] = pd.to_numeric(jobs["seeds"], errors="coerce").fillna(0).astype(int)
    jobs["group"] = jobs["rule"].replace({"search_stage": "search"})
    totals = {r.paper: float(r.device_h) for r in rows[(rows["rule"] == "total") & (rows["device_h"] != "")]
              .itertuples()}
    per_paper = []
    for paper in dict.fromkeys(jobs["paper"]):
        mine = jobs[jobs["paper"] == paper]
        known = mine[mine["hours"].notna()]
        by_rule = {rule: float(known.loc[known["group"] == rule, "hours"].sum())
                   if (known["group"] == rule).any() else float("nan") for rule in ("train", "evaluate", "search")}
        per_paper.append([paper, by_rule["train"], by_rule["evaluate"], by_rule["search"],
                          totals.get(paper, float(known["hours"].sum())),
                          int(mine.loc[mine["hours"].isna(), "seeds_n"].sum())])
    searches = []
    stages = jobs[jobs["group"] == "search"].copy()
    stages["per_job"] = _hours(stages["device_h_per_job"])
    for (paper, search), mine in stages.groupby(["paper", "job"], sort=False):
        last = mine[mine["rule"] == "search"]
        claim = last.iloc[0] if not last.empty else mine.iloc[-1]
        known = mine["per_job"].dropna()
        searches.append([paper, search, _hours(pd.Series([claim["claimed_gpu_h"]])).iloc[0],
                         float(known.sum()) if not known.empty else float("nan"),
                         ", ".join(mine.loc[mine["per_job"].isna(), "stage"]), claim["claim"]])
    total = rows[(rows["rule"] == "total") & (rows["paper"] == "all")]
    ideal = rows[rows["rule"].str.match(r"total / \d+ devices$")]
    devices = int(re.search(r"\d+", ideal.iloc[0]["rule"]).group()) if not ideal.empty else None
    return ProjectedCost(
        pd.DataFrame(per_paper, columns=PAPER_COLUMNS), pd.DataFrame(searches, columns=SEARCH_COLUMNS),
        float(total.iloc[0]["device_h"]) if not total.empty else float(jobs["hours"].sum()),
        int(jobs.loc[jobs["hours"].isna(), "seeds_n"].sum()),
        devices, float(ideal.iloc[0]["device_h"]) if not ideal.empty else None,
        ideal.iloc[0]["basis"] if not ideal.empty else "")
