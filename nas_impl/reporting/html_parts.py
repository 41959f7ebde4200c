"""Small HTML building blocks for the report; every value passes through `html.escape`."""

from __future__ import annotations

import base64
import math
import numbers
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from nas_impl.reporting.tables import INCONSISTENT, NOT_COMPARABLE, NOT_REPRODUCED, NOT_RUN, REPRODUCED

EMPTY = "–"
VERDICT_CLASSES = {
    REPRODUCED: "v-reproduced",
    NOT_REPRODUCED: "v-not-reproduced",
    INCONSISTENT: "v-inconsistent",
    NOT_COMPARABLE: "v-not-comparable",
    NOT_RUN: "v-not-run",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.v-reproduced { background: #d6f5d6; color: #135c13; }
.v-not-reproduced { background: #f8d4d4; color: #8a1414; }
.v-not-comparable { background: #e4e4e4; color: #444; }
.v-inconsistent { background: #fbe7c6; color: #6b4a00; }
.v-not-run { background: #fafafa; color: #999; }
.counts span { display: inline-block; padding: 0.3em 0.8em; margin-right: 0.5em; border-radius: 4px; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
figure { margin: 1em 0; } figcaption { color: #666; font-size: 0.85em; }
details > summary { cursor: pointer; color: #555; margin: 0.3em 0; }
.note { color: #666; font-size: 0.85em; }
"""


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


def _strip_zeros(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_number(value: object, *, signed: bool = False) -> str:
    """As a paper prints it: integers with thousands separators, else up to two decimals
    (one from 100 up, three significant digits below 1), trailing zeros dropped."""
    if is_missing(value):
        return EMPTY
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    sign = "+" if signed and number != 0 else ""
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):{sign},}"
    if abs(number) >= 100:
        return _strip_zeros(f"{number:{sign},.1f}")
    if abs(number) >= 1:
        return _strip_zeros(f"{number:{sign}.2f}")
    return f"{number:{sign}.3g}"


def cell(value: object, *, css_class: str = "") -> str:
    """A table cell: numbers right-aligned and formatted, text escaped."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        text, css_class = format_number(value), f"num {css_class}".strip()
    else:
        text = EMPTY if is_missing(value) or value == "" else str(value)
    class_attr = f' class="{escape(css_class)}"' if css_class else ""
    return f"<td{class_attr}>{escape(text)}</td>"


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """`rows` hold cells already made by `cell` (so each cell chooses its own class)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def verdict_cell(verdict: str) -> str:
    return cell(verdict, css_class=VERDICT_CLASSES.get(verdict, ""))


def embedded_png(path: Path, alt: str) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{escape(alt)}">'
