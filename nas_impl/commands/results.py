"""Verbs that turn runs into tables, plots and reports: compare, plot, report, regress."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from nas_impl.errors import NasReproError
from nas_impl.reporting import write_csv_atomic


def compare(args: argparse.Namespace) -> dict:
    from nas_impl.replication import VERDICTS, compare_replication, load_replication

    rep = load_replication(args.replication)
    tables = compare_replication(rep, args.results, args.scale)
    if args.table:
        if args.table not in tables:
            raise NasReproError(f"{rep.root / 'published.csv'} has no table '{args.table}'; tables: {', '.join(tables)}")
        tables = {args.table: tables[args.table]}
    counts = dict.fromkeys(VERDICTS, 0)
    for name, table in tables.items():
        write_csv_atomic(table, Path(args.out_dir) / f"{name}.csv")
        for verdict, count in table["verdict"].value_counts().items():
            counts[verdict] += int(count)
    return {"paper": rep.paper, "scale": args.scale, "tables": sorted(tables), "verdicts": counts}


def _read_table(path: str | Path) -> pd.DataFrame:
    from nas_impl.reporting.tables import read_table

    path = Path(path)
    if not path.is_file():
        raise NasReproError(f"table {path} does not exist: run `nasrepro compare` first")
    return read_table(path)


def plot(args: argparse.Namespace) -> dict:
    from nas_impl.reporting import plot_table

    plot_table(_read_table(args.table), args.out)
    return {"table": str(args.table), "plot": str(args.out)}


def report(args: argparse.Namespace) -> dict:
    from nas_impl.reporting import build_scorecard, verdict_counts, write_report

    scale_dir = Path(args.results)
    tables = [Path(p) for p in args.tables] if args.tables else sorted(scale_dir.glob("*/tables/*.csv"))
    if not tables:
        raise NasReproError(f"no comparison tables under {scale_dir}/*/tables/: run the workflow first")
    scorecard = build_scorecard(tables)
    write_csv_atomic(scorecard, args.scorecard)
    plots = [Path(p) for p in args.plots] if args.plots else sorted(scale_dir.glob("*/plots/*.png"))
    benchmarks = Path(args.benchmarks) if args.benchmarks else scale_dir / "benchmarks"
    write_report(scale_dir, Path(args.out), scorecard=scorecard, plots=plots,
                 benchmarks_dir=benchmarks if benchmarks.is_dir() else None)
    return {"report": str(args.out), "scorecard": str(args.scorecard), "verdicts": verdict_counts(scorecard)}


def regress(args: argparse.Namespace) -> dict:
    from nas_impl.replication import regress as check

    differences = check(args.results, args.reference, accuracy_tolerance=args.accuracy_tolerance)
    if differences:
        lines = "\n".join(f"  {d}" for d in differences)
        raise RegressionFound(f"{len(differences)} difference(s) between {args.results} and {args.reference}:\n{lines}")
    return {"results": str(args.results), "reference": str(args.reference), "differences": 0}


class RegressionFound(NasReproError):
    """Results differ from the reference: exit status 1 rather than 2 (bad input)."""

    exit_code = 1
