"""Reporting: plots per comparison table, the scorecard over all papers, and the HTML report.

Names are imported on first use, so writing a table does not import matplotlib.
"""

from nas_impl.lazy import lazy_attributes

_WHERE = {
    "plot_table": "plots", "write_report": "report",
    "build_scorecard": "scorecard", "verdict_counts": "scorecard", "write_csv_atomic": "scorecard",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
