"""Collects the throughput benchmarks into one side-by-side table with ratios (printed and saved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS: dict[str, dict[str, float]] = {}  # model -> variant -> images/s
OUT = Path(__file__).resolve().parents[2] / "results" / "bench" / "throughput.json"


@pytest.fixture
def record_throughput():
    def record(model: str, variant: str, images_per_s: float) -> None:
        RESULTS.setdefault(model, {})[variant] = images_per_s

    return record


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("training throughput (images/s, same run, same data)")
    columns = [("suite", "(a) suite"), ("dataloader", "(b) DataLoader"),
               ("dataloader+channels_last", "(b') +ch_last"), ("bare", "(c) bare")]
    tr.write_line(f"{'model':<20}" + "".join(f"{title:>16}" for _, title in columns)
                  + f"{'a/b':>7}{'a/b_':>7}{'a/c':>7}")
    for model, v in RESULTS.items():
        cells = "".join(f"{v[key]:>16.0f}" if key in v else f"{'-':>16}" for key, _ in columns)
        ratios = "".join(f"{v['suite'] / v[key]:>7.2f}" if "suite" in v and key in v else f"{'-':>7}"
                         for key in ("dataloader", "dataloader+channels_last", "bare"))
        tr.write_line(f"{model:<20}{cells}{ratios}")
        for variant, ips in v.items():
            if variant not in dict(columns):
                tr.write_line(f"{model:<20}{variant}: {ips:.0f} images/s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(RESULTS, indent=2) + "\n")
    tr.write_line(f"saved to {OUT}")
