"""Reporting: plots per table shape, scorecard, and the self-contained HTML report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from nas_impl.reporting import build_scorecard, plot_table, verdict_counts, write_report
from nas_impl.reporting.html_parts import format_number
from nas_impl.reporting.plot_panels import PublishedVsReproducedPanel, QualityVsCostPanel
from nas_impl.reporting.plots import plan_panels, plot_title
from nas_impl.reporting.scorecard import SCORECARD_COLUMNS, write_csv_atomic
from nas_impl.reporting.tables import TABLE_COLUMNS, normalize_table, read_table

NAN = math.nan
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"


def claim(model: str, metric: str, published: float, reproduced: float = NAN, *, std: float = NAN,
          n: float = NAN, verdict: str = "not run", unit: str = "%", **fields: object) -> dict:
    row = {
        "paper": "proxylessnas", "table": "table2", "dataset": "cifar10", "model": model, "metric": metric,
        "unit": unit, "published": published, "reproduced_mean": reproduced, "reproduced_std": std, "n": n,
        "delta": NAN if math.isnan(reproduced) else reproduced - published, "tolerance": NAN,
        "verdict": verdict, "scale": "smoke", "run_dataset": "fashion-mnist", "experiment": "retrain",
        "source": "paper Table 2", "note": "",
    }
    row.update(fields)
    return row


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def accuracy_and_macs_table() -> pd.DataFrame:
    comparable = dict(verdict="not comparable at this scale")
    return frame([
        claim("ProxylessNAS-GPU", "top1", 97.9, 88.1, std=0.4, n=2, **comparable),
        claim("ProxylessNAS-GPU", "macs", 465.0, 463.2, n=1, unit="M", verdict="reproduced"),
        claim("ProxylessNAS-GPU", "latency_ms", 5.1, 7.3, std=0.2, n=3, unit="ms", verdict="not reproduced"),
        claim("ProxylessNAS-GPU", "memory_mb", 40.0, 41.0, n=1, unit="MB", verdict="reproduced"),
        claim("MobileNetV2", "top1", 96.0, 87.5, std=0.3, n=2, **comparable),
        claim("MobileNetV2", "macs", 0.3, 0.3, n=1, unit="G", verdict="reproduced"),  # other unit: rescaled
        claim("MobileNetV2", "latency_ms", 6.1, NAN, unit="ms"),
    ])


def accuracy_only_table() -> pd.DataFrame:
    return frame([
        claim("ResNet-56", "top1_err", 6.7, 7.0, std=0.1, n=3, verdict="reproduced", table="table1"),
        claim("ResNet-110", "top1_err", 6.1, NAN, table="table1"),
    ])


def architecture_only_table() -> pd.DataFrame:
    return frame([
        claim("AutoSlim-A", "params", 1.5, 1.5, n=1, unit="M", verdict="reproduced", table="table3"),
        claim("AutoSlim-A", "macs", 59.0, 59.0, n=1, unit="M", verdict="reproduced", table="table3"),
        claim("AutoSlim-B", "params", 4.1, 4.3, n=1, unit="M", verdict="not reproduced", table="table3"),
        claim("AutoSlim-B", "params_no_norm", 4.0, 4.2, n=1, unit="M", verdict="not reproduced", table="table3"),
    ])


def not_run_table() -> pd.DataFrame:
    return frame([
        claim("MemNAS-A", "top1", 94.0, table="table4"),
        claim("MemNAS-A", "macs", 200.0, unit="M", table="table4"),
        claim("MemNAS-A", "memory_mb", 12.0, unit="MB", table="table4"),
    ])


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 2_000
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def leftover_temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "make_table",
    [accuracy_and_macs_table, accuracy_only_table, architecture_only_table, not_run_table],
)
def test_plot_table_writes_a_png_for_each_table_shape(tmp_path: Path, make_table) -> None:
    out = tmp_path / "plots" / "table.png"
    plot_table(make_table(), out)
    assert_png(out)
    assert leftover_temp_files(tmp_path) == []


def test_plot_table_survives_an_empty_table(tmp_path: Path) -> None:
    out = tmp_path / "empty.png"
    plot_table(frame([]), out)
    assert_png(out)


def test_accuracy_is_plotted_against_each_cost_metric() -> None:
    panels = plan_panels(normalize_table(accuracy_and_macs_table()))
    assert [type(p) for p in panels] == [QualityVsCostPanel] * 3
    assert [p.cost.metric for p in panels] == ["macs", "memory_mb", "latency_ms"]
    macs = panels[0].cost
    assert macs.unit == "M"
    assert macs.values[("cifar10", "MobileNetV2")].published == pytest.approx(300.0)


def test_accuracy_without_macs_and_architecture_tables_get_one_panel_per_metric() -> None:
    accuracy_panels = plan_panels(normalize_table(accuracy_only_table()))
    assert [(type(p), p.series.metric) for p in accuracy_panels] == [(PublishedVsReproducedPanel, "top1_err")]
    arch_panels = plan_panels(normalize_table(architecture_only_table()))
    assert [p.series.metric for p in arch_panels] == ["params", "macs", "params_no_norm"]


def test_titles_name_the_table_and_the_scale_caveats() -> None:
    title = plot_title(normalize_table(accuracy_and_macs_table()))
    assert "proxylessnas" in title and "table2" in title and "smoke" in title
    assert "smoke scale: accuracy on fashion-mnist, not comparable" in title
    assert "not run" in plot_title(normalize_table(not_run_table()))
    assert "not comparable" not in plot_title(normalize_table(architecture_only_table()))


def write_tables(root: Path) -> list[Path]:
    """Two papers, written out of order, as compare.py would lay them out."""
    second_paper = architecture_only_table().assign(paper="autoslim")
    tables = {
        root / "proxylessnas" / "tables" / "table2.csv": accuracy_and_macs_table(),
        root / "autoslim" / "tables" / "table3.csv": second_paper,
        root / "proxylessnas" / "tables" / "table1.csv": accuracy_only_table(),
    }
    for path, table in tables.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    return list(tables)


def test_scorecard_concatenates_sorts_and_counts(tmp_path: Path) -> None:
    scorecard = build_scorecard(write_tables(tmp_path))
    assert list(scorecard.columns) == list(SCORECARD_COLUMNS)
    assert len(scorecard) == 7 + 4 + 2
    keys = list(zip(scorecard["paper"], scorecard["table"], scorecard["model"], scorecard["metric"]))
    assert keys == sorted(keys)
    assert keys[0] == ("autoslim", "table3", "AutoSlim-A", "macs")
    assert verdict_counts(scorecard) == {
        "reproduced": 6, "not reproduced": 3, "published value inconsistent": 0, "not comparable at this scale": 2,
        "not run": 2,
    }


def test_verdict_counts_has_every_verdict_even_when_absent() -> None:
    counts = verdict_counts(normalize_table(not_run_table()))
    assert counts == {"reproduced": 0, "not reproduced": 0, "published value inconsistent": 0,
                      "not comparable at this scale": 0, "not run": 3}


def test_model_names_are_read_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    frame([claim("NA", "top1", 70.0), claim("None", "top1", 71.0)]).to_csv(path, index=False)
    assert list(read_table(path)["model"]) == ["NA", "None"]


def test_write_csv_atomic_round_trips(tmp_path: Path) -> None:
    scorecard = build_scorecard(write_tables(tmp_path))
    out = tmp_path / "scorecard.csv"
    write_csv_atomic(scorecard, out)
    assert len(pd.read_csv(out)) == len(scorecard)
    assert leftover_temp_files(tmp_path) == []


def write_metrics(path: Path, *, device_name: str, threads: int, torch: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {
        "seed": 0, "device": "cpu", "device_name": device_name, "threads": threads,
        "versions": {"python": "3.12.3", "torch": torch, "torchvision": "0.20.1", "cuda": None,
                     "cudnn": None, "nas_impl": "0.1.0", "nas_impl_commit": "abc1234"},
    }
    path.write_text(json.dumps({"top1": 88.0, "wall_time_s": 12.5, "run": run}))


def write_benchmark(path: Path, seconds: float, max_rss: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{BENCHMARK_HEADER}\n{seconds}\t0:00:10\t{max_rss}\t900.1\t400\t410\t0.1\t0.2\t95.0\t9.8\n")


@pytest.fixture
def scale_dir(tmp_path: Path) -> Path:
    scale = tmp_path / "results" / "smoke"
    write_metrics(scale / "proxylessnas" / "retrain" / "seed0" / "metrics.json",
                  device_name="Test CPU X1", threads=2, torch="2.5.1")
    write_metrics(scale / "proxylessnas" / "retrain" / "seed1" / "metrics.json",
                  device_name="Test CPU X1", threads=2, torch="2.5.1")
    write_metrics(scale / "autoslim" / "search" / "seed0" / "metrics.json",
                  device_name="Other CPU Y2", threads=4, torch="2.6.0")
    (scale / "autoslim" / "broken" / "seed0").mkdir(parents=True)
    (scale / "autoslim" / "broken" / "seed0" / "metrics.json").write_text("{not json")
    benchmarks = scale / "benchmarks"
    write_benchmark(benchmarks / "proxylessnas" / "train" / "retrain-seed0.tsv", 10.5, "512.25")
    write_benchmark(benchmarks / "proxylessnas" / "train" / "retrain-seed1.tsv", 20.25, "640.5")
    write_benchmark(benchmarks / "autoslim" / "search" / "search.tsv", 3.0, "-")
    return scale


def test_report_is_self_contained_and_complete(scale_dir: Path) -> None:
    table_paths = write_tables(scale_dir)
    escaped_table = accuracy_only_table().assign(paper="autoslim", table="table9", model="<script>alert(1)</script>")
    escaped_path = scale_dir / "autoslim" / "tables" / "table9.csv"
    escaped_table.to_csv(escaped_path, index=False)
    table_paths.append(escaped_path)
    plots = []
    for path in table_paths:
        plot = path.parent.parent / "plots" / f"{path.stem}.png"
        plot_table(read_table(path), plot)
        plots.append(plot)
    scorecard = build_scorecard(table_paths)
    out = scale_dir / "report.html"

    write_report(scale_dir, out, scorecard=scorecard, plots=plots, benchmarks_dir=scale_dir / "benchmarks")

    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "smoke" in html
    assert html.count("data:image/png;base64,") == len(plots)
    assert "<link" not in html and "<script" not in html and "src=\"http" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for model in ["ProxylessNAS-GPU", "MobileNetV2", "ResNet-56", "ResNet-110", "AutoSlim-A", "AutoSlim-B"]:
        assert model in html
    for verdict, count in verdict_counts(scorecard).items():
        assert f"{verdict}: <b>{count}</b>" in html
    # environment: distinct values with how many runs each; the broken file is reported, not fatal
    for value in ["Test CPU X1", "Other CPU Y2", "2.5.1", "2.6.0", "3.12.3", "abc1234"]:
        assert value in html
    assert "3 training run(s)" in html
    assert "broken" in html
    # cost: 10.5 + 20.25 + 3.0 seconds in all, 30.75 for the proxylessnas train stage
    assert "Total: <b>33.75 s</b>" in html
    assert "30.75" in html
    assert "640.5" in html
    assert leftover_temp_files(scale_dir) == []


def test_report_opens_on_a_summary_per_paper_and_folds_rows_not_run(tmp_path: Path) -> None:
    rows = [
        claim("ResNet-20 TAS", "macs", 26.0, 26.1, n=1, unit="M", verdict="reproduced", paper="tas", table="t3"),
        claim("ResNet-20 TAS", "params", 0.2, 0.3, n=1, unit="M", verdict="not reproduced", paper="tas", table="t3"),
        claim("ResNet-20 TAS", "top1", 92.0, 60.0, n=1, verdict="not comparable at this scale", paper="tas",
              table="t3", reason="accuracy at smoke scale or on another dataset"),
        claim("ResNet-20 LCCL", "top1", 91.7, paper="tas", table="t3", reason="no experiment claims it"),
        claim("ResNet-32 LCCL", "top1", 90.7, paper="tas", table="t3", reason="no experiment claims it"),
        claim("AutoSlim-A", "top1", 75.0, paper="autoslim", table="t1", reason="not run at smoke scale"),
    ]
    scorecard = normalize_table(frame(rows))
    plots = []
    for paper, table in (("tas", "t3"), ("autoslim", "t1")):
        plots.append(tmp_path / paper / "plots" / f"{table}.png")
        plot_table(scorecard[scorecard["table"] == table], plots[-1])
    out = tmp_path / "report.html"
    write_report(tmp_path, out, scorecard=scorecard, plots=plots, benchmarks_dir=None)
    html = out.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 1  # the table that ran
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Scorecard</h2>")
    summary = html[html.index("<h2>Summary</h2>"):html.index("<h2>Scorecard</h2>")]
    # per paper: claims, judged, then one count per verdict
    cells = ["tas", "5", "2", "1", "1", "1", "2"]
    assert "".join(f">{c}</td>" for c in cells[:3]) in summary.replace('<td class="num">', ">").replace("<td>", ">")
    assert "no experiment claims it (2)" in summary and "not run at smoke scale (1)" in summary
    assert "<b>Not reproduced</b>: ResNet-20 TAS params." in summary
    assert "Not run at this scale, so not plotted here: t1" in summary  # autoslim's only table ran nothing
    scorecard_part = html[html.index("<h2>Scorecard</h2>"):]
    folded = scorecard_part[scorecard_part.index("<details>"):scorecard_part.index("</details>")]
    assert "2 row(s) not run" in folded and "ResNet-20 LCCL" in folded and "ResNet-20 TAS" not in folded


def test_each_method_gets_its_own_colour_and_marker() -> None:
    from nas_impl.reporting.plot_data import method_of

    assert method_of("ResNet-20 TAS [searched, KD]") == "TAS [searched, KD]"
    assert method_of("AutoSlim-MobileNetV2 207M") == "AutoSlim-MobileNetV2"
    assert method_of("MobileNetV2 1.0x") == "MobileNetV2" and method_of("ResNet-56") == "ResNet-56"
    assert method_of("MemNAS (λ=0.5)") == method_of("MemNAS (λ=0.8)") == "MemNAS"
    assert method_of("MobileNet V2 (1.4x)") == "MobileNet V2" and method_of("ShuffleNet V2 (2.0x)") == "ShuffleNet V2"
    assert method_of("MnasNet (DM=0.75)") == "MnasNet" and method_of("MemNAS-A") == "MemNAS-A"
    table = frame([claim(model, metric, value, unit=unit)
                   for model in ("ResNet-20 TAS", "ResNet-32 TAS", "ResNet-20 LCCL", "ResNet-20 SFP")
                   for metric, value, unit in (("top1", 91.0, "%"), ("macs", 40.0, "M"))])
    panel = next(p for p in plan_panels(normalize_table(table)) if isinstance(p, QualityVsCostPanel))
    styles = panel.method_styles()
    assert list(styles) == ["TAS", "LCCL", "SFP"]
    assert len({(s["color"], s["marker"]) for s in styles.values()}) == 3


def test_report_without_benchmarks_or_runs(tmp_path: Path) -> None:
    scorecard = normalize_table(not_run_table())
    out = tmp_path / "report.html"
    write_report(tmp_path, out, scorecard=scorecard, plots=[], benchmarks_dir=None)
    html = out.read_text(encoding="utf-8")
    assert "No benchmark files" in html
    assert "MemNAS-A" in html
    assert leftover_temp_files(tmp_path) == []


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [(97.9, False, "97.9"), (59.0, False, "59"), (3_400_000.0, False, "3,400,000"), (463.25, False, "463.2"),
     (0.0123, False, "0.0123"), (-1.8, True, "-1.8"), (0.35, True, "+0.35"), (0.0, True, "0"), (NAN, False, "–")],
)
def test_numbers_are_formatted_as_a_paper_prints_them(value: float, signed: bool, text: str) -> None:
    assert format_number(value, signed=signed) == text


def test_an_inconsistent_published_value_is_counted_listed_coloured_and_drawn_hollow(tmp_path: Path) -> None:
    rows = [claim("ResNet-110", "memory_mb", 9.9, 7.2, n=1, unit="M", verdict="published value inconsistent",
                  note="[inconsistent: less memory than ResNet-56]"),
            claim("ResNet-56", "memory_mb", 6.7, 3.8, n=1, unit="M", verdict="not reproduced")]
    path = tmp_path / "memnas" / "tables" / "cifar10.csv"
    path.parent.mkdir(parents=True)
    frame(rows).assign(paper="memnas", table="cifar10").to_csv(path, index=False)
    table = read_table(path)
    assert "1 published value(s) inconsistent" in plot_title(table)
    scorecard = build_scorecard([path])
    assert verdict_counts(scorecard)["published value inconsistent"] == 1
    out = tmp_path / "report.html"
    write_report(tmp_path, out, scorecard=scorecard, plots=[], benchmarks_dir=None)
    html = out.read_text(encoding="utf-8")
    assert '<td class="v-inconsistent">published value inconsistent</td>' in html
    assert "<b>Published value inconsistent</b>" in html and "ResNet-110 memory_mb" in html
    assert "Not reproduced</b>: ResNet-56 memory_mb." in html  # the other row keeps its own verdict


def test_a_measured_cost_beside_an_untrained_accuracy_gets_its_own_panel() -> None:
    measured = frame([claim("ResNet-56", "top1", 93.0), claim("ResNet-56", "memory_mb", 6.7, 3.6, n=1, unit="MB",
                                                              verdict="not reproduced"),
                      claim("ResNet-56", "latency_ms", 70.0, unit="ms")])
    kinds = [(type(p).__name__, getattr(p, "series", None) and p.series.metric) for p in
             plan_panels(normalize_table(measured))]
    assert ("PublishedVsReproducedPanel", "memory_mb") in kinds  # its reproduced value is drawn somewhere
    assert ("PublishedVsReproducedPanel", "latency_ms") not in kinds  # published only: the scatter shows it


def write_cost_csv(path: Path) -> None:
    """A small cost.csv as `nasrepro cost` writes it (nas_impl.cost.COLUMNS): paper toy trains one net of
    known rate and one of unknown rate, and runs two searches; paper other trains one net."""
    import csv

    from nas_impl.cost import COLUMNS

    def job(rule: str, paper: str, name: str, per_job: str, stage: str = "", **more: str) -> dict:
        hours = "" if per_job == "" else f"{float(per_job) * 2:g}"  # 2 seeds
        return {"rule": rule, "stage": stage, "paper": paper, "job": name, "seeds": 2, "device_h_per_job": per_job,
                "device_h": hours, "basis": "a basis", **more}

    rows = [
        job("search_stage", "toy", "s1", "2", stage="supernet"),
        job("search", "toy", "s1", "", stage="slim", claim="not stated: the paper reports no search GPU-hours"),
        job("search", "toy", "s2", "3", stage="search", claimed_gpu_h="1.5", claim="published.csv t/M: paper; 1 GPU"),
        job("train", "toy", "small", "0.75"), job("evaluate", "toy", "small", "0.125"), job("train", "toy", "big", ""),
        job("train", "other", "net", "50"),
        {"rule": "report", "paper": "all", "work": 1, "unit": "jobs", "basis": "1 job(s)"},
        {"rule": "total", "paper": "toy", "device_h": "11.75", "basis": "sum; 4 job(s) of unknown rate left out"},
        {"rule": "total", "paper": "other", "device_h": "100", "basis": "sum; 0 job(s) of unknown rate left out"},
        {"rule": "total", "paper": "all", "device_h": "111.75", "basis": "1 device; 4 job(s) of unknown rate left out"},
        {"rule": "total / 4 devices", "paper": "all", "device_h": "27.9375",
         "basis": "ideal scaling (total / 4; --gpus): wall-clock hours if no job waited; no fewer than the critical "
                  "path, 50.25 h"},
    ]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_report_shows_the_projected_cost_when_nasrepro_cost_wrote_one(tmp_path: Path) -> None:
    scorecard = normalize_table(not_run_table())
    out = tmp_path / "report.html"
    write_report(tmp_path, out, scorecard=scorecard, plots=[], benchmarks_dir=None)
    assert "Projected cost" not in out.read_text(encoding="utf-8")  # no cost.csv, no section

    write_cost_csv(tmp_path / "cost.csv")
    write_report(tmp_path, out, scorecard=scorecard, plots=[], benchmarks_dir=None,
                 projected_cost=tmp_path / "cost.csv")
    html = out.read_text(encoding="utf-8")
    section = html[html.index("<h2>Projected cost</h2>"):]
    assert html.index("<h2>Cost</h2>") < html.index("<h2>Projected cost</h2>")
    # 1.5 + 0.25 + (2 + 3) x 2 seeds = 11.75 h for toy, 100 for other (111.75: one decimal from 100 up); 2 x 2 seeds
    # of unknown rate (big, s1's slim)
    assert "Total: <b>111.8 device-h</b> on 1 device (4 job(s) of unknown rate not counted)." in section
    assert "27.94 h on 4 device(s): ideal scaling" in section and "critical path, 50.25 h" in section

    def row(*cells: str) -> str:
        return "<tr>" + "".join(f'<td class="num">{c}</td>' if c[:1].isdigit() else f"<td>{c}</td>"
                                for c in cells) + "</tr>"

    # paper, train, evaluate, search (all stages), total, jobs of unknown rate
    assert row("toy", "1.5", "0.25", "10", "11.75", "4") in section
    assert row("other", "100", "–", "–", "100", "0") in section
    # one search, one seed: claimed beside projected, and the stages of unknown cost
    assert row("toy", "s1", "–", "2", "slim", "not stated: the paper reports no search GPU-hours") in section
    assert row("toy", "s2", "1.5", "3", "–", "published.csv t/M: paper; 1 GPU") in section


def test_report_verb_finds_the_scales_cost_csv(tmp_path: Path) -> None:
    from nas_impl.cli import main

    table = tmp_path / "memnas" / "tables" / "table4.csv"
    table.parent.mkdir(parents=True)
    not_run_table().assign(paper="memnas").to_csv(table, index=False)
    args = ["report", "--results", str(tmp_path), "--out", str(tmp_path / "report.html"), "--scorecard",
            str(tmp_path / "scorecard.csv"), "--plots", "--latency-targets"]
    assert main(args) == 0
    assert "Projected cost" not in (tmp_path / "report.html").read_text(encoding="utf-8")
    write_cost_csv(tmp_path / "cost.csv")
    assert main(args) == 0
    assert "Total: <b>111.8 device-h</b>" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert main([*args, "--projected-cost", str(tmp_path / "missing.csv")]) == 2
