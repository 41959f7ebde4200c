"""A comparison table regrouped for plotting: per metric, the published and reproduced value of each model."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from nas_impl.reporting.metric_kinds import unit_factor

PointKey = tuple[str, str]  # (dataset, model)


@dataclass(frozen=True)
class PlotValue:
    published: float
    reproduced: float  # NaN when not run
    spread: float  # reproduced_std when n > 1, else NaN (one seed has no spread to show)
    verdict: str


@dataclass
class MetricSeries:
    metric: str
    unit: str
    values: dict[PointKey, PlotValue] = field(default_factory=dict)  # in table order

    def lookup(self, key: PointKey) -> PlotValue | None:
        """The value for `key`, else the model's only value on any dataset (a MACs row may name none)."""
        if key in self.values:
            return self.values[key]
        same_model = [value for (_, model), value in self.values.items() if model == key[1]]
        return same_model[0] if len(same_model) == 1 else None


def _common_unit(units: pd.Series) -> str:
    return Counter(units).most_common(1)[0][0]


def _conversion(unit: str, target: str) -> float | None:
    if unit == target:
        return 1.0
    source_factor, target_factor = unit_factor(unit), unit_factor(target)
    if source_factor is None or target_factor is None:
        return None
    return source_factor / target_factor


def _plot_value(row: pd.Series, scale: float) -> PlotValue:
    n = row["n"]
    spread = row["reproduced_std"] if (not math.isnan(n) and n > 1) else math.nan
    return PlotValue(
        published=row["published"] * scale,
        reproduced=row["reproduced_mean"] * scale,
        spread=spread * scale,
        verdict=row["verdict"],
    )


def series_by_metric(rows: pd.DataFrame) -> dict[str, MetricSeries]:
    """One series per metric, in order of first appearance; rows in another unit are rescaled.

    Expects a table from `normalize_table`. A row whose unit cannot be converted to the metric's
    most common unit is left out rather than drawn on a wrongly labelled axis.
    """
    series: dict[str, MetricSeries] = {}
    for metric in dict.fromkeys(rows["metric"]):
        metric_rows = rows[rows["metric"] == metric]
        target_unit = _common_unit(metric_rows["unit"])
        current = MetricSeries(metric=metric, unit=target_unit)
        for _, row in metric_rows.iterrows():
            key = (row["dataset"], row["model"])
            scale = _conversion(row["unit"], target_unit)
            if scale is None or key in current.values:
                continue
            current.values[key] = _plot_value(row, scale)
        series[metric] = current
    return series


def point_labels(rows: pd.DataFrame) -> dict[PointKey, str]:
    """The model name of each point, with its dataset when the table covers several datasets."""
    several_datasets = rows["dataset"].nunique() > 1
    labels: dict[PointKey, str] = {}
    for dataset, model in zip(rows["dataset"], rows["model"]):
        name = model or "(unnamed)"
        labels[(dataset, model)] = f"{name} ({dataset})" if several_datasets and dataset else name
    return labels


_SIZE_TOKEN = re.compile(r"^\d+(\.\d+)?[KMG]?x?$")  # "207M", "1.0x": a size, not a method
_VARIANT = re.compile(r"\s*\([^)]*\)\s*$")  # a trailing "(1.4x)", "(λ=0.5)", "(DM=1)": a variant of the method
_VERSION_TOKEN = re.compile(r"^[Vv]\d+$")  # "V2" belongs to the name before it ("MobileNet V2")


def method_of(model: str) -> str:
    """The method a model row belongs to, for one colour and marker per method in a plot:
    "ResNet-20 TAS [searched, KD]" -> "TAS [searched, KD]" (network, then method),
    "AutoSlim-MobileNetV2 207M" -> "AutoSlim-MobileNetV2" (method, then size), "MobileNetV2 1.0x"
    and "ResNet-50" -> themselves less the size (an unpruned network is its own method);
    "MemNAS (λ=0.5)" -> "MemNAS" and "MobileNet V2 (1.4x)" -> "MobileNet V2" (variants in brackets)."""
    name, bracket, label = model.partition(" [")
    name = _VARIANT.sub("", name) or name
    tokens: list[str] = []
    for token in name.split():
        if _VERSION_TOKEN.match(token) and tokens:
            tokens[-1] = f"{tokens[-1]} {token}"
        else:
            tokens.append(token)
    tokens = [t for t in tokens if not _SIZE_TOKEN.match(t)] or tokens[:1]
    method = " ".join(tokens[1:]) if len(tokens) > 1 else " ".join(tokens)
    return f"{method} [{label}" if bracket else method
