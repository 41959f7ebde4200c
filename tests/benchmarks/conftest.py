"""Collects the throughput benchmarks into one side-by-side table with ratios (printed and saved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS: dict[str, dict[str, float]] = {}  # model -> variant -> images/s
STEP_COSTS: dict[str, dict[str, float]] = {}  # search -> step_s, bare_s, ratio, target
OUT = Path(__file__).resolve().parents[2] / "results" / "bench" / "throughput.json"
STEP_OUT = OUT.with_name("search_steps.json")


@pytest.fixture
def record_throughput():
    def record(model: str, variant: str, images_per_s: float) -> None:
        RESULTS.setdefault(model, {})[variant] = images_per_s

    return record


@pytest.fixture
def record_step_cost():
    def record(name: str, step_s: float, bare_s: float, target: float, floor_s: float | None = None) -> None:
        cost = {"step_s": step_s, "bare_s": bare_s, "ratio": step_s / bare_s, "target": target}
        if floor_s is not None:
            cost.update(floor_s=floor_s, floor_ratio=floor_s / bare_s, step_over_floor=step_s / floor_s)
        STEP_COSTS[name] = cost

    return record


def pytest_terminal_summary(terminalreporter):
    _step_cost_summary(terminalreporter)
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


def _step_cost_summary(tr) -> None:
    if not STEP_COSTS:
        return
    tr.section("search step against the bare training step (median s, interleaved rounds)")
    tr.write_line(f"{'search':<36}{'step s':>9}{'bare s':>9}{'ratio':>8}{'target':>8}{'floor':>8}{'step/floor':>11}")
    for name, c in STEP_COSTS.items():
        floor = (f"{c['floor_ratio']:>8.2f}{c['step_over_floor']:>11.2f}" if "floor_s" in c else f"{'-':>8}{'-':>11}")
        tr.write_line(f"{name:<36}{c['step_s']:>9.3f}{c['bare_s']:>9.3f}{c['ratio']:>8.2f}"
                      f"{'<= ' + str(c['target']):>8}{floor}")
    STEP_OUT.parent.mkdir(parents=True, exist_ok=True)
    STEP_OUT.write_text(json.dumps(STEP_COSTS, indent=2) + "\n")
    tr.write_line(f"saved to {STEP_OUT}")
