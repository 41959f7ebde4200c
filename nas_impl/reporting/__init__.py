"""Reporting: plots per comparison table, the scorecard over all papers, and the HTML report."""

from nas_impl.reporting.plots import plot_table
from nas_impl.reporting.report import write_report
from nas_impl.reporting.scorecard import build_scorecard, verdict_counts, write_csv_atomic

__all__ = ["build_scorecard", "plot_table", "verdict_counts", "write_csv_atomic", "write_report"]
