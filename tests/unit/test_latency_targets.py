"""Searched nets against their latency targets: the table of measured / predicted / target latency
(nas_impl.replication.latency_targets), its verb and its report section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from nas_impl.replication import load_replication
from nas_impl.replication.latency_targets import latency_targets
from nas_impl.reporting.report import render_report

REP = load_replication(Path(__file__).resolve().parents[2] / "replications" / "proxylessnas")
EXPERIMENT, SEARCH = "Proxyless-mobile-C10", "proxyless-mobile-C10"
MEASURED_HERE = "measured on cpu with nas_impl.metrics.latency_lut (batch 1)"


def write(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def make_results(root: Path, *, hardware="latency", target=40.0, predicted=50.0, measured=30.0,
                 table=None, run_threads=2, seed=0) -> Path:
    search_dir = root / "search" / SEARCH / f"seed{seed}"
    write(search_dir / "search.json", {
        "details": {"hardware": hardware, "ref_value": target, "derived_cost": predicted},
        "selected": "latency", "targets": {"latency": {"details": {"cost": predicted}}}})
    write(search_dir / "latency.json", table or {"hardware": hardware, "source": MEASURED_HERE,
                                                 "device": "AMD EPYC", "threads": 2, "batch": 1})
    if measured is not None:
        write(root / EXPERIMENT / f"seed{seed}" / "latency.json", {"latency": {
            "median_ms": measured, "device": "cpu", "device_name": "AMD EPYC", "threads": run_threads,
            "batch_size": 1}})
    return root


def test_measured_latency_beside_target_and_prediction(tmp_path):
    table = latency_targets(REP, make_results(tmp_path), [EXPERIMENT], [0])
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.target_ms, row.predicted_ms, row.measured_ms) == (40.0, 50.0, 30.0)
    assert row.prediction_error_pct == pytest.approx(-40.0)  # 30 / 50 - 1
    assert row.measured_vs_target_pct == pytest.approx(-25.0)  # 30 / 40 - 1
    assert row.device == "AMD EPYC" and row.threads == 2 and row.note == ""


def test_a_net_not_timed_yet_keeps_its_prediction_and_says_so(tmp_path):
    row = latency_targets(REP, make_results(tmp_path, measured=None), [EXPERIMENT], [0]).iloc[0]
    assert row.predicted_ms == 50.0 and math.isnan(row.measured_ms) and math.isnan(row.prediction_error_pct)
    assert "not measured yet" in row.note


def test_unlike_measurements_are_flagged(tmp_path):
    row = latency_targets(REP, make_results(tmp_path, run_threads=1), [EXPERIMENT], [0]).iloc[0]
    assert "threads 2, the measurement 1" in row.note
    official = {"hardware": "latency", "source": "mobile_trim.yaml (han-cai/files)", "device": "mobile"}
    row = latency_targets(REP, make_results(tmp_path / "file", table=official), [EXPERIMENT], [0]).iloc[0]
    assert "was not measured here" in row.note and "mobile_trim.yaml" in row.note


def test_no_row_for_a_macs_target_or_a_search_not_run(tmp_path):
    assert latency_targets(REP, make_results(tmp_path, hardware="flops"), [EXPERIMENT], [0]).empty
    assert latency_targets(REP, tmp_path / "nothing", [EXPERIMENT], [0]).empty
    assert len(latency_targets(REP, make_results(tmp_path / "two", seed=1), [EXPERIMENT], [0, 1])) == 1


def test_the_verb_writes_the_table_and_refuses_an_unsearched_experiment(tmp_path, capsys):
    from nas_impl.cli import main

    results, out = make_results(tmp_path / "results"), tmp_path / "latency_targets.csv"
    args = ["latency-targets", "--replication", str(REP.root), "--results", str(results), "--seeds", "0",
            "--out", str(out), "--experiments"]
    assert main([*args, EXPERIMENT]) == 0
    assert pd.read_csv(out)["measured_ms"].tolist() == [30.0]
    assert main([*args, "proxyless_gpu"]) != 0
    err = capsys.readouterr().err
    assert "proxyless_gpu is not a searched experiment" in err and "Traceback" not in err


def test_the_report_shows_the_table_only_when_a_search_aimed_at_a_latency(tmp_path):
    out = tmp_path / "latency_targets.csv"
    latency_targets(REP, make_results(tmp_path / "results"), [EXPERIMENT], [0]).to_csv(out, index=False)
    scorecard = pd.DataFrame(columns=["paper", "table", "verdict"])
    html = render_report(tmp_path, scorecard=scorecard, plots=[], benchmarks_dir=None, latency_targets=[out])
    assert "Searched nets against their latency targets" in html
    assert "-40.0%" in html and "-25.0%" in html and EXPERIMENT in html
    without = render_report(tmp_path, scorecard=scorecard, plots=[], benchmarks_dir=None)
    assert "latency targets" not in without
