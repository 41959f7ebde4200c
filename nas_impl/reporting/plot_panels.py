"""The two panel kinds of a table plot: quality against a cost metric, and published vs reproduced per model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from nas_impl.reporting.metric_kinds import QUALITY_METRICS, axis_label, quality_label
from nas_impl.reporting.plot_data import MetricSeries, PlotValue, PointKey, method_of
from nas_impl.reporting.tables import INCONSISTENT, NOT_COMPARABLE

PUBLISHED_STYLE = dict(marker="o", color="tab:blue", markersize=7, linestyle="none")
REPRODUCED_STYLE = dict(marker="D", color="tab:orange", markersize=6, linestyle="none")
NOT_COMPARABLE_STYLE = dict(marker="D", color="grey", markerfacecolor="none", markersize=6, linestyle="none")
PAIR_LINE_STYLE = dict(color="grey", linewidth=0.7, alpha=0.7)
LABEL_FONT_SIZE = 7
# One colour and marker per method in a quality-vs-cost panel (cycled past ten methods).
METHOD_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                  "tab:olive", "tab:cyan", "tab:gray")
METHOD_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _finite(*values: float) -> bool:
    return all(not math.isnan(v) for v in values)


# Drawn hollow: ours beside a published value it is not judged against.
UNJUDGED = (NOT_COMPARABLE, INCONSISTENT)


def _reproduced_kind(value: PlotValue) -> str:
    return "not comparable" if value.verdict in UNJUDGED else "comparable"


def _reproduced_style(value: PlotValue) -> dict:
    return NOT_COMPARABLE_STYLE if value.verdict in UNJUDGED else REPRODUCED_STYLE


def _error(spread: float) -> float | None:
    return None if math.isnan(spread) else spread


def _readable_x(ax: Axes) -> None:
    """Plain tick labels, a few of them, over at least 2% of the values' size: two counts that agree
    to the fourth digit (3.5997M against 3.6M) would otherwise get an offset axis of crowded ticks."""
    from matplotlib.ticker import MaxNLocator

    low, high = ax.get_xlim()
    centre, least = (low + high) / 2, 0.02 * max(abs(low), abs(high))
    if high - low < least:
        ax.set_xlim(centre - least / 2, centre + least / 2)
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))


def _add_legend(ax: Axes, drawn: set[str]) -> None:
    handles = [Line2D([], [], label="published", **PUBLISHED_STYLE)]
    if "comparable" in drawn:
        handles.append(Line2D([], [], label="reproduced (mean ± std)", **REPRODUCED_STYLE))
    if "not comparable" in drawn:
        handles.append(Line2D([], [], label="reproduced, not comparable", **NOT_COMPARABLE_STYLE))
    ax.legend(handles=handles, fontsize=LABEL_FONT_SIZE, loc="best")


@dataclass(frozen=True)
class Pair:
    label: str
    model: str
    quality: PlotValue
    cost: PlotValue


@dataclass(frozen=True)
class QualityVsCostPanel:
    """Quality (y) against a cost metric (x); each model's published and reproduced points joined."""

    quality: MetricSeries
    cost: MetricSeries
    labels: dict[PointKey, str]

    def pairs(self) -> list[Pair]:
        out = []
        for key, quality in self.quality.values.items():
            cost = self.cost.lookup(key)
            if cost is not None:
                out.append(Pair(self.labels.get(key, key[1]), key[1], quality, cost))
        return out

    def has_points(self) -> bool:
        return any(_finite(p.quality.published, p.cost.published) or _finite(p.quality.reproduced)
                   for p in self.pairs())

    @property
    def model_count(self) -> int:
        return len(self.pairs())

    def method_styles(self) -> dict[str, dict]:
        """Colour and marker of each method, in order of first appearance."""
        methods = dict.fromkeys(method_of(pair.model) for pair in self.pairs())
        return {m: dict(color=METHOD_COLOURS[i % len(METHOD_COLOURS)], marker=METHOD_MARKERS[i % len(METHOD_MARKERS)])
                for i, m in enumerate(methods)}

    def draw(self, ax: Axes) -> None:
        """Published points filled, reproduced ones hollow in their method's colour and marker, each
        pair joined (dotted where the reproduced value is not comparable); only reproduced points are
        labelled (the legend names the methods)."""
        styles = self.method_styles()
        not_comparable = False
        for pair in self.pairs():
            style = styles[method_of(pair.model)]
            published = (pair.cost.published, pair.quality.published)
            # Architecture metrics are deterministic; when only the published one exists, use it.
            reproduced_x = pair.cost.reproduced if _finite(pair.cost.reproduced) else pair.cost.published
            reproduced = (reproduced_x, pair.quality.reproduced)
            if _finite(*published):
                ax.plot(*published, linestyle="none", markersize=6, **style)
            if _finite(*reproduced):
                comparable = pair.quality.verdict not in UNJUDGED
                not_comparable |= not comparable
                ax.errorbar(*reproduced, yerr=_error(pair.quality.spread), xerr=_error(pair.cost.spread), capsize=2,
                            elinewidth=0.8, linestyle="none", markersize=7, markerfacecolor="white",
                            markeredgewidth=1.5, **style)
                ax.annotate(pair.label, reproduced, xytext=(5, -3), textcoords="offset points",
                            fontsize=LABEL_FONT_SIZE, color=style["color"])
                if _finite(*published):
                    ax.plot([published[0], reproduced[0]], [published[1], reproduced[1]], color=style["color"],
                            linewidth=0.8, alpha=0.7, linestyle="-" if comparable else ":")
        ax.set_xlabel(axis_label(self.cost.metric, self.cost.unit))
        ax.set_ylabel(quality_label(self.quality.metric, self.quality.unit))
        ax.set_title(f"{self.quality.metric} vs {self.cost.metric}", fontsize=9)
        ax.margins(x=0.12, y=0.1)
        ax.grid(True, alpha=0.3)
        handles = [Line2D([], [], linestyle="none", markersize=6, label=m, **style) for m, style in styles.items()]
        handles += [Line2D([], [], linestyle="none", marker="o", color="black", label="published (filled)"),
                    Line2D([], [], linestyle="none", marker="o", color="black", markerfacecolor="white",
                           label="reproduced (hollow)" + (", dotted: not comparable" if not_comparable else ""))]
        ax.legend(handles=handles, fontsize=LABEL_FONT_SIZE, loc="center left", bbox_to_anchor=(1.02, 0.5),
                  frameon=False, title="method", title_fontsize=LABEL_FONT_SIZE + 1)


@dataclass(frozen=True)
class PublishedVsReproducedPanel:
    """One metric: a row per model, the published and the reproduced value side by side."""

    series: MetricSeries
    labels: dict[PointKey, str]

    def has_points(self) -> bool:
        return any(_finite(v.published) or _finite(v.reproduced) for v in self.series.values.values())

    @property
    def model_count(self) -> int:
        return len(self.series.values)

    def draw(self, ax: Axes) -> None:
        drawn: set[str] = set()
        keys = list(self.series.values)
        for row, key in enumerate(keys):
            value = self.series.values[key]
            if _finite(value.published, value.reproduced):
                ax.plot([value.published, value.reproduced], [row, row], **PAIR_LINE_STYLE)
            if _finite(value.published):
                ax.plot(value.published, row, **PUBLISHED_STYLE)
            if _finite(value.reproduced):
                ax.errorbar(value.reproduced, row, xerr=_error(value.spread), capsize=2, elinewidth=0.8,
                            **_reproduced_style(value))
                drawn.add(_reproduced_kind(value))
        ax.set_yticks(range(len(keys)), [self.labels.get(key, key[1]) for key in keys], fontsize=LABEL_FONT_SIZE)
        ax.set_ylim(len(keys) - 0.5, -0.5)  # first model at the top, as in the paper's table
        metric, unit = self.series.metric, self.series.unit
        ax.set_xlabel(quality_label(metric, unit) if metric in QUALITY_METRICS else axis_label(metric, unit))
        ax.set_title(self.series.metric, fontsize=9)
        ax.margins(x=0.1)
        _readable_x(ax)
        ax.grid(True, axis="x", alpha=0.3)
        _add_legend(ax, drawn)
