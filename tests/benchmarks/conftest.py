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
    tr.write_line(f"{'model':<22}{'(a) suite':>12}{'(b) DataLoader':>16}{'(c) bare step':>15}{'a/b':>8}{'a/c':>8}")
    for model, v in RESULTS.items():
        a, b, c = v.get("suite"), v.get("dataloader"), v.get("bare")
        ratio = lambda x, y: f"{x / y:.2f}" if x and y else "-"  # noqa: E731
        fmt = lambda x: f"{x:.0f}" if x else "-"  # noqa: E731
        tr.write_line(f"{model:<22}{fmt(a):>12}{fmt(b):>16}{fmt(c):>15}{ratio(a, b):>8}{ratio(a, c):>8}")
        for variant, ips in v.items():
            if variant not in ("suite", "dataloader", "bare"):
                tr.write_line(f"{model:<22}{variant}: {ips:.0f} images/s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(RESULTS, indent=2) + "\n")
    tr.write_line(f"saved to {OUT}")
