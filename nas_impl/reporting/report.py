"""`write_report`: one self-contained HTML file (inline CSS, embedded PNGs) for a whole scale."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path

import pandas as pd

from nas_impl.errors import NasReproError
from nas_impl.io import atomic_path
from nas_impl.reporting.costs import collect_costs
from nas_impl.reporting.environment import collect_environment
from nas_impl.reporting.html_parts import (
    CSS, EMPTY, VERDICT_CLASSES, cell, embedded_png, format_number, html_table, is_missing, verdict_cell,
)
from nas_impl.reporting.projected_cost import read_projected_cost
from nas_impl.reporting.scorecard import verdict_counts
from nas_impl.reporting.tables import (
    INCONSISTENT, NOT_COMPARABLE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, VERDICTS, normalize_table,
)

PAPER_TABLE_HEADERS = ["dataset", "model", "metric", "unit", "published", "reproduced", "n", "delta",
                       "tolerance", "verdict", "reason", "source", "note"]


def _significant(value: object, digits: int) -> str:
    # Published figures are shown as written and reproduced ones to comparable precision;
    # format_number's rounding would show 253.15 as 253.2.
    return EMPTY if is_missing(value) else f"{float(value):.{digits}g}"


def _reproduced_text(row: pd.Series) -> str:
    mean, std, n = row["reproduced_mean"], row["reproduced_std"], row["n"]
    if is_missing(mean):
        return EMPTY
    if not is_missing(std) and not is_missing(n) and n > 1:
        return f"{_significant(mean, 6)} ± {_significant(std, 3)}"
    return _significant(mean, 6)


def _claim_cells(row: pd.Series, columns: list[str]) -> list[str]:
    special = {
        "published": lambda: cell(_significant(row["published"], 10), css_class="num"),
        "reproduced": lambda: cell(_reproduced_text(row), css_class="num"),
        "delta": lambda: cell(format_number(row["delta"], signed=True), css_class="num"),
        "verdict": lambda: verdict_cell(row["verdict"]),
    }
    return [special[c]() if c in special else cell(row[c]) for c in columns]


def _claims_table(rows: pd.DataFrame, headers: list[str]) -> str:
    return html_table(headers, (_claim_cells(row, headers) for _, row in rows.iterrows()))


def _verdict_counts_section(scorecard: pd.DataFrame) -> str:
    badges = "".join(
        f'<span class="{VERDICT_CLASSES.get(verdict, "")}">{escape(verdict)}: <b>{count}</b></span>'
        for verdict, count in verdict_counts(scorecard).items()
    )
    return f'<p class="counts">{badges}</p>\n<p class="meta">{len(scorecard)} claims in all.</p>'


def _plot_owner(plot: Path, papers: set[str]) -> str | None:
    """The paper a plot belongs to: the nearest folder above it named after a paper."""
    return next((parent.name for parent in plot.parents if parent.name in papers), None)


def _figure(plot: Path) -> str:
    if not plot.is_file():
        raise NasReproError(f"{plot}: plot not found; run the plot step before the report")
    return f"<figure>{embedded_png(plot, alt=plot.stem)}<figcaption>{escape(plot.stem)}</figcaption></figure>"


def _reasons(rows: pd.DataFrame, verdict: str) -> str:
    """'reason (count), ...' of the rows with this verdict."""
    reasons = rows.loc[rows["verdict"] == verdict, "reason"].replace("", "no reason recorded").value_counts()
    return "; ".join(f"{escape(reason)} ({count})" for reason, count in reasons.items())


def _summary_table(scorecard: pd.DataFrame, papers: list[str]) -> str:
    rows = []
    for paper in papers:
        mine = scorecard[scorecard["paper"] == paper]
        counts = verdict_counts(mine)
        rows.append([cell(paper), cell(len(mine)), cell(counts[REPRODUCED] + counts[NOT_REPRODUCED])] +
                    [cell(counts[v], css_class=VERDICT_CLASSES[v]) for v in VERDICTS])
    headers = ["paper", "claims", "judged", *VERDICTS]
    return html_table(headers, rows)


def _paper_summary(paper: str, rows: pd.DataFrame, plots: list[Path]) -> str:
    parts = [f'<h3 id="summary-{escape(paper)}">{escape(paper)}</h3>']
    not_reproduced = rows[rows["verdict"] == NOT_REPRODUCED]
    if not not_reproduced.empty:
        listed = ", ".join(escape(f"{r.model} {r.metric}") for r in not_reproduced.itertuples())
        parts.append(f"<p><b>Not reproduced</b>: {listed}.</p>")
    inconsistent = rows[rows["verdict"] == INCONSISTENT]
    if not inconsistent.empty:
        listed = ", ".join(escape(f"{r.model} {r.metric}") for r in inconsistent.itertuples())
        parts.append(f"<p><b>Published value inconsistent</b> (measured, not judged; why in each row's note): "
                     f"{listed}.</p>")
    for verdict in (NOT_COMPARABLE, NOT_RUN):
        reasons = _reasons(rows, verdict)
        if reasons:
            parts.append(f"<p><b>{escape(verdict)}</b>: {reasons}.</p>")
    ran = set(rows.loc[rows["verdict"] != NOT_RUN, "table"])
    shown = [plot for plot in plots if plot.stem in ran or plot.stem not in set(rows["table"])]
    parts.extend(_figure(plot) for plot in shown)
    idle = [plot.stem for plot in plots if plot not in shown]
    if idle:
        parts.append(f'<p class="note">Not run at this scale, so not plotted here: {escape(", ".join(idle))} '
                     "(their published numbers are in the scorecard below).</p>")
    return "\n".join(parts)


def _summary_section(scorecard: pd.DataFrame, plots: list[Path]) -> str:
    papers = list(dict.fromkeys(scorecard["paper"]))
    plots_by_paper: dict[str | None, list[Path]] = {}
    for plot in plots:
        plots_by_paper.setdefault(_plot_owner(Path(plot), set(papers)), []).append(Path(plot))
    parts = ["<h2>Summary</h2>", _verdict_counts_section(scorecard), _summary_table(scorecard, papers)]
    parts.extend(_paper_summary(p, scorecard[scorecard["paper"] == p], plots_by_paper.get(p, [])) for p in papers)
    if None in plots_by_paper:
        parts.append("<h3>Other plots</h3>\n" + "\n".join(_figure(plot) for plot in plots_by_paper[None]))
    return "\n".join(parts)


def _scorecard_section(scorecard: pd.DataFrame) -> str:
    """Every claim, grouped by paper and table; the rows that were not run are folded away."""
    parts = ["<h2>Scorecard</h2>",
             '<p class="meta">Every published number, by paper and table. Rows that were not run at this scale '
             "are folded under each table.</p>"]
    for paper in dict.fromkeys(scorecard["paper"]):
        parts.append(f"<h3>{escape(paper)}</h3>")
        mine = scorecard[scorecard["paper"] == paper]
        for table in dict.fromkeys(mine["table"]):
            rows = mine[mine["table"] == table]
            ran, not_run = rows[rows["verdict"] != NOT_RUN], rows[rows["verdict"] == NOT_RUN]
            parts.append(f"<h4>{escape(table)}</h4>")
            if not ran.empty:
                parts.append(_claims_table(ran, PAPER_TABLE_HEADERS))
            if not not_run.empty:
                parts.append(f"<details><summary>{len(not_run)} row(s) not run</summary>\n"
                             f"{_claims_table(not_run, PAPER_TABLE_HEADERS)}\n</details>")
    return "\n".join(parts)


def _unreadable_note(paths: list[Path]) -> str:
    if not paths:
        return ""
    listed = ", ".join(escape(str(p)) for p in paths)
    return f'<p class="note">Could not read {len(paths)} file(s): {listed}</p>'


def _environment_section(scale_dir: Path) -> str:
    environment = collect_environment(scale_dir)
    parts = ["<h2>Environment</h2>"]
    if environment.run_count == 0:
        parts.append(f"<p>No metrics.json with a run record under {escape(str(scale_dir))}.</p>")
    else:
        parts.append(
            f"<p>{environment.run_count} training run(s), "
            f"{escape(format_number(environment.total_wall_time_s))} s of training wall time in all.</p>"
        )
        rows = ([cell(r.field), cell(r.value), cell(r.runs)] for r in environment.values.itertuples())
        parts.append(html_table(["field", "value", "runs"], rows))
    parts.append(_unreadable_note(environment.unreadable))
    return "\n".join(parts)


def _hours_minutes_seconds(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _cost_section(benchmarks_dir: Path | None) -> str:
    parts = ["<h2>Cost</h2>"]
    if benchmarks_dir is None or not Path(benchmarks_dir).is_dir():
        parts.append("<p>No benchmark files.</p>")
        return "\n".join(parts)
    costs = collect_costs(Path(benchmarks_dir))
    if costs.per_stage.empty:
        parts.append(f"<p>No benchmark files under {escape(str(benchmarks_dir))}.</p>")
    else:
        total = format_number(costs.total_seconds)
        peak = "not measured" if is_missing(costs.max_rss_mb) else f"{format_number(costs.max_rss_mb)} MB"
        parts.append(
            f"<p>Total: <b>{escape(total)} s</b> ({_hours_minutes_seconds(costs.total_seconds)}), "
            f"peak RSS {escape(peak)}.</p>"
        )
        rows = [[cell(r.paper), cell(r.rule), cell(r.jobs), cell(r.seconds), cell(r.max_rss_mb)]
                for r in costs.per_stage.itertuples()]
        rows.append([cell("total"), cell(""), cell(int(costs.per_stage["jobs"].sum())),
                     cell(costs.total_seconds), cell(costs.max_rss_mb)])
        parts.append(html_table(["paper", "rule (stage)", "jobs", "seconds", "max RSS (MB)"], rows))
    parts.append(_unreadable_note(costs.unreadable))
    return "\n".join(parts)


LATENCY_TARGET_HEADERS = ["paper", "experiment", "seed", "target (ms)", "predicted (ms)", "measured (ms)",
                          "prediction error", "measured vs target", "device", "threads", "note"]


def _percent_cell(value: object) -> str:
    return cell(EMPTY if is_missing(value) else f"{float(value):+.1f}%", css_class="num")


def _latency_targets_section(paths: list[Path]) -> str:
    """Searched nets timed on this run's device, beside their search's target and the lookup
    table's prediction (nas_impl.replication.latency_targets); no section when no search aimed at one."""
    readable, unreadable = [], []
    for path in paths:
        try:
            readable.append(pd.read_csv(path, keep_default_na=False, na_values=[""]))
        except (OSError, ValueError):
            unreadable.append(path)
    rows = pd.concat(readable, ignore_index=True) if readable else pd.DataFrame()
    if rows.empty and not unreadable:
        return ""
    parts = ["<h2>Searched nets against their latency targets</h2>",
             "<p>Each latency-aware search steered its net by a lookup table measured on this run's device; "
             "the derived net is then timed end to end on the same device. <i>Prediction error</i> = measured / "
             "predicted - 1; <i>measured vs target</i> = measured / target - 1 (negative: faster than the "
             "target). Not judged: the paper publishes no target of these runs.</p>"]
    body = ([cell(r.paper), cell(r.experiment), cell(r.seed), cell(r.target_ms),
             cell(r.predicted_ms), cell(r.measured_ms),
             _percent_cell(r.prediction_error_pct), _percent_cell(r.measured_vs_target_pct), cell(r.device),
             cell(r.threads), cell(r.note)] for r in rows.itertuples())
    parts.append(html_table(LATENCY_TARGET_HEADERS, body))
    parts.append(_unreadable_note(unreadable))
    return "\n".join(parts)


def _hours_cell(value: object) -> str:
    return cell(EMPTY if is_missing(value) else float(value))


def _projected_cost_section(path: Path | None) -> str:
    """What `nasrepro cost` projected for this scale (its cost.csv, nas_impl.cost), when there is one:
    device-hours per paper, and each search's claimed cost beside its projected one."""
    if path is None:
        return ""
    try:
        projected = read_projected_cost(Path(path))
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return "<h2>Projected cost</h2>\n" + _unreadable_note([Path(path)])
    unknown = (f" ({projected.unknown_jobs} job(s) of unknown rate not counted)" if projected.unknown_jobs else "")
    parts = ["<h2>Projected cost</h2>",
             f"<p>Device-hours that <code>nasrepro cost</code> projected for every training, evaluation and search "
             f"job of this scale before it ran: each job's work over a measured or calibrated rate of its network "
             f"(cost.csv, {escape(str(path))}; the device it priced is in the command's output). A job of unknown "
             "rate adds nothing. The Cost section is what the benchmarks measured.</p>",
             f"<p>Total: <b>{escape(format_number(projected.total_h))} device-h</b> on 1 device{escape(unknown)}."]
    if projected.devices is not None and projected.devices_h is not None:
        parts[-1] += (f" {escape(format_number(projected.devices_h))} h on {projected.devices} device(s): "
                      f"{escape(projected.devices_basis)}.")
    parts[-1] += "</p>"
    rows = ([cell(r.paper), _hours_cell(r.train_h), _hours_cell(r.evaluate_h), _hours_cell(r.search_h),
             _hours_cell(r.device_h), cell(r.unknown_jobs)] for r in projected.per_paper.itertuples())
    parts.append(html_table(["paper", "train (device-h)", "evaluate (device-h)", "search (device-h)",
                             "total (device-h)", "jobs of unknown rate"], rows))
    if not projected.searches.empty:
        parts.append("<h3>Claimed search cost beside the projected</h3>\n"
                     '<p class="meta">One search, one seed. Claimed: GPU-hours from published.csv, or what the '
                     "references say; projected: the device-hours of the stages whose rate is known.</p>")
        rows = ([cell(r.paper), cell(r.search), _hours_cell(r.claimed_gpu_h), _hours_cell(r.projected_h),
                 cell(r.unknown_stages), cell(r.claim)] for r in projected.searches.itertuples())
        parts.append(html_table(["paper", "search", "claimed (GPU-h)", "projected (device-h)",
                                 "stages of unknown cost", "claim"], rows))
    return "\n".join(parts)


def _scale_name(scorecard: pd.DataFrame, scale_dir: Path) -> str:
    scales = [s for s in dict.fromkeys(scorecard.get("scale", pd.Series(dtype=str))) if isinstance(s, str) and s]
    return ", ".join(scales) if scales else Path(scale_dir).name


def render_report(scale_dir: Path, *, scorecard: pd.DataFrame, plots: list[Path],
                  benchmarks_dir: Path | None, latency_targets: list[Path] = (),
                  projected_cost: Path | None = None, generated_at: datetime | None = None) -> str:
    scorecard = normalize_table(scorecard)
    scale = _scale_name(scorecard, scale_dir)
    generated = (generated_at or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    title = f"nas-repro report: {scale} scale"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Scale: <b>{escape(scale)}</b>. Generated {escape(generated)} '
        f"from {escape(str(scale_dir))}.</p>",
        _summary_section(scorecard, plots),
        _scorecard_section(scorecard),
        _latency_targets_section(list(latency_targets)),
        _environment_section(Path(scale_dir)),
        _cost_section(benchmarks_dir),
        _projected_cost_section(projected_cost),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def write_report(scale_dir: Path, out_html: Path, *, scorecard: pd.DataFrame, plots: list[Path],
                 benchmarks_dir: Path | None, latency_targets: list[Path] = (),
                 projected_cost: Path | None = None) -> None:
    """Write the report atomically: verdict counts, scorecard, per-paper tables and plots, searched nets
    against their latency targets, environment, cost, and the projected cost when `nasrepro cost` wrote one."""
    html = render_report(scale_dir, scorecard=scorecard, plots=plots, benchmarks_dir=benchmarks_dir,
                         latency_targets=latency_targets, projected_cost=projected_cost)
    with atomic_path(out_html) as tmp:
        tmp.write_text(html, encoding="utf-8")
