"""`plot_table`: one PNG per comparison table, published and reproduced numbers side by side."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from nas_impl.io import atomic_path
from nas_impl.reporting.metric_kinds import COST_AXES, QUALITY_METRICS, is_accuracy
from nas_impl.reporting.plot_data import point_labels, series_by_metric
from nas_impl.reporting.plot_panels import PublishedVsReproducedPanel, QualityVsCostPanel
from nas_impl.reporting.tables import INCONSISTENT, NOT_COMPARABLE, NOT_RUN, normalize_table

Panel = QualityVsCostPanel | PublishedVsReproducedPanel

DPI = 120
MAX_COLUMNS = 3
PANEL_WIDTH_IN = 5.2
MIN_PANEL_HEIGHT_IN = 4.0
HEIGHT_PER_MODEL_IN = 0.25
SCATTER_WIDTH_IN = 8.0  # the axes and, beside them, the legend of methods
SCATTER_HEIGHT_IN = 5.0


def plan_panels(rows: pd.DataFrame) -> list[Panel]:
    """Quality against each cost metric the table has, then every metric not yet shown on its own."""
    series = series_by_metric(rows)
    labels = point_labels(rows)
    quality = next((series[m] for m in QUALITY_METRICS if m in series), None)
    panels: list[Panel] = []
    shown: set[str] = set()
    if quality is not None:
        for cost_metric in COST_AXES:
            if cost_metric not in series:
                continue
            panel = QualityVsCostPanel(quality, series[cost_metric], labels)
            if panel.has_points():
                panels.append(panel)
                shown.add(quality.metric)
                cost = series[cost_metric]
                if _has_reproduced_pair(quality, cost) or all(math.isnan(v.reproduced) for v in cost.values.values()):
                    shown.add(cost_metric)  # else (measured, accuracy not trained yet) it gets its own panel too
    for metric, metric_series in series.items():
        panel = PublishedVsReproducedPanel(metric_series, labels)
        if metric not in shown and panel.has_points():
            panels.append(panel)
    return panels


def _has_reproduced_pair(quality, cost) -> bool:
    """Whether some model has both a reproduced quality and a reproduced cost to draw."""
    return any(not math.isnan(value.reproduced) and (other := quality.lookup(key)) is not None
               and not math.isnan(other.reproduced) for key, value in cost.values.items())


def _joined(values: pd.Series) -> str:
    return ", ".join(v for v in dict.fromkeys(values) if v)


def _not_comparable_note(rows: pd.DataFrame, scale: str) -> str | None:
    affected = rows[rows["verdict"] == NOT_COMPARABLE]
    if affected.empty:
        return None
    metrics = list(dict.fromkeys(affected["metric"]))
    what = "accuracy" if all(is_accuracy(m) for m in metrics) else ", ".join(metrics)
    run_on = _joined(affected["run_dataset"])
    where = f" on {run_on}" if run_on else ""
    prefix = f"{scale} scale: " if scale else ""
    return f"{prefix}{what}{where}, not comparable"


def _inconsistent_note(rows: pd.DataFrame) -> str | None:
    inconsistent = int((rows["verdict"] == INCONSISTENT).sum())
    return f"{inconsistent} published value(s) inconsistent with their table (hollow)" if inconsistent else None


def _not_run_note(rows: pd.DataFrame) -> str | None:
    not_run = int((rows["verdict"] == NOT_RUN).sum())
    if rows.empty or not_run == len(rows):
        return "not run"
    return f"{not_run} of {len(rows)} numbers not run" if not_run else None


def plot_title(rows: pd.DataFrame) -> str:
    scale = _joined(rows["scale"])
    heading = " · ".join(part for part in (_joined(rows["paper"]), _joined(rows["table"])) if part)
    if scale:
        heading = f"{heading} ({scale} scale)" if heading else f"{scale} scale"
    notes = [note for note in (_not_comparable_note(rows, scale), _inconsistent_note(rows), _not_run_note(rows))
             if note]
    return "\n".join([heading or "comparison table", *notes])


def _figure_for(panels: list[Panel]) -> tuple[Figure, list]:
    """Quality-vs-cost panels on the top row (each with its legend of methods beside it), the
    per-model panels below, sized by their number of models, so neither squeezes the other."""
    scatter = [p for p in panels if isinstance(p, QualityVsCostPanel)]
    per_model = [p for p in panels if not isinstance(p, QualityVsCostPanel)]
    scatter_columns = min(MAX_COLUMNS, len(scatter))
    model_columns = min(MAX_COLUMNS, len(per_model))
    model_rows = math.ceil(len(per_model) / model_columns) if per_model else 0
    most_models = max((panel.model_count for panel in per_model), default=0)
    model_height = max(MIN_PANEL_HEIGHT_IN, 1.0 + HEIGHT_PER_MODEL_IN * most_models) * model_rows
    scatter_height = SCATTER_HEIGHT_IN * math.ceil(len(scatter) / scatter_columns) if scatter else 0.0
    width = max(SCATTER_WIDTH_IN * scatter_columns, PANEL_WIDTH_IN * model_columns, PANEL_WIDTH_IN)
    figure = Figure(figsize=(width, max(scatter_height + model_height, MIN_PANEL_HEIGHT_IN) + 0.8),
                    layout="constrained")
    if not panels:
        return figure, [figure.subplots()]
    parts = [(scatter, scatter_columns, scatter_height), (per_model, model_columns, model_height)]
    parts = [part for part in parts if part[0]]
    subfigures = figure.subfigures(len(parts), 1, height_ratios=[height for _, _, height in parts], squeeze=False)
    axes = []
    for (group, columns, _), subfigure in zip(parts, subfigures.ravel()):
        grid = subfigure.subplots(math.ceil(len(group) / columns), columns, squeeze=False).ravel().tolist()
        for unused in grid[len(group):]:
            unused.set_visible(False)
        axes.extend(grid[:len(group)])
    return figure, axes


def plot_table(table: pd.DataFrame, out_path: str | Path) -> None:
    """Write one PNG for a comparison table (columns of `compare.py`), atomically."""
    rows = normalize_table(table)
    panels = plan_panels(rows)
    figure, axes = _figure_for(panels)
    for panel, ax in zip(panels, axes):
        panel.draw(ax)
    if not panels:
        axes[0].text(0.5, 0.5, "no published or reproduced values to plot", ha="center", va="center")
        axes[0].set_axis_off()
    figure.suptitle(plot_title(rows), fontsize=11)
    with atomic_path(out_path) as tmp:
        _save_compact_png(figure, tmp)


def _save_compact_png(figure: Figure, path: Path) -> None:
    """A 256-colour palette PNG: plots have few colours, and the report embeds every plot, so this
    keeps it a few hundred KB instead of megabytes, with no visible change."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256).save(path, format="PNG", optimize=True)
