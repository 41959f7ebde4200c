"""Verbs that turn runs into tables, plots and reports: compare, plot, report, regress."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas_impl.errors import NasReproError


def compare(args: argparse.Namespace) -> dict:
    from nas_impl.replication import VERDICTS, compare_replication, load_replication
    from nas_impl.reporting import write_csv_atomic

    rep = load_replication(args.replication)
    tables = compare_replication(rep, args.results, args.scale, args.seeds)
    if args.table:
        if args.table not in tables:
            raise NasReproError(f"{rep.root / 'published.csv'} has no table '{args.table}'; tables: {', '.join(tables)}")
        tables = {args.table: tables[args.table]}
    counts = dict.fromkeys(VERDICTS, 0)
    for name, table in tables.items():
        write_csv_atomic(table, Path(args.out_dir) / f"{name}.csv")
        for verdict, count in table["verdict"].value_counts().items():
            counts[verdict] += int(count)
    return {"paper": rep.paper, "scale": args.scale, "seeds": args.seeds or rep.seeds[args.scale], "tables": sorted(tables),
            "verdicts": counts}


def latency_targets(args: argparse.Namespace) -> dict:
    from nas_impl.replication import load_replication
    from nas_impl.replication.latency_targets import latency_targets as measure_against_targets
    from nas_impl.reporting import write_csv_atomic

    rep = load_replication(args.replication)
    unknown = [e for e in args.experiments if e not in rep.experiments or not rep.experiments[e].search]
    if unknown:
        raise NasReproError(f"--experiments: {', '.join(unknown)} is not a searched experiment of "
                            f"{rep.root / 'replication.yaml'}")
    table = measure_against_targets(rep, args.results, args.experiments, args.seeds)
    write_csv_atomic(table, args.out)
    return {"paper": rep.paper, "rows": len(table), "out": str(args.out)}


def _read_table(path: str | Path):
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
    from nas_impl.reporting import build_scorecard, verdict_counts, write_csv_atomic, write_report

    scale_dir = Path(args.results)
    tables = [Path(p) for p in args.tables] if args.tables else sorted(scale_dir.glob("*/tables/*.csv"))
    if not tables:
        raise NasReproError(f"no comparison tables under {scale_dir}/*/tables/: run the workflow first")
    scorecard = build_scorecard(tables)
    write_csv_atomic(scorecard, args.scorecard)
    plots = [Path(p) for p in args.plots] if args.plots else sorted(scale_dir.glob("*/plots/*.png"))
    benchmarks = Path(args.benchmarks) if args.benchmarks else scale_dir / "benchmarks"
    latency = ([Path(p) for p in args.latency_targets] if args.latency_targets is not None
               else sorted(scale_dir.glob("*/latency_targets.csv")))
    projected = Path(args.projected_cost) if args.projected_cost else scale_dir / "cost.csv"
    if args.projected_cost and not projected.is_file():
        raise NasReproError(f"--projected-cost {projected}: no such file; write it with `nasrepro cost --scale ...`")
    write_report(scale_dir, Path(args.out), scorecard=scorecard, plots=plots,
                 benchmarks_dir=benchmarks if benchmarks.is_dir() else None, latency_targets=latency,
                 projected_cost=projected if projected.is_file() else None)
    return {"report": str(args.out), "scorecard": str(args.scorecard), "verdicts": verdict_counts(scorecard)}


def regress(args: argparse.Namespace) -> dict:
    from nas_impl.replication.regress import environment_differences, regress as check

    differences = check(args.results, args.reference, accuracy_floor=args.accuracy_tolerance)
    if differences:
        lines = "\n".join(f"  {d}" for d in differences)
        environment = environment_differences(Path(args.results), Path(args.reference))
        where = ("\nthe environments differ (reference -> results):\n" + "\n".join(f"  {e}" for e in environment)
                 if environment else "\nsame environment as the reference")
        raise RegressionFound(f"{len(differences)} difference(s) between {args.results} and {args.reference}:\n"
                              f"{lines}{where}")
    return {"results": str(args.results), "reference": str(args.reference), "differences": 0}


def reference(args: argparse.Namespace) -> dict:
    """Make RESULTS' tables the reference `regress` checks against: copies every `<paper>/tables/*.csv`
    and records where the runs ran (`environment.csv`); the old reference is replaced as a whole.
    With --papers only those papers' tables are replaced (and only theirs are read: a results folder
    may hold stale tables of papers the last run did not select); the others' stay as they were."""
    import shutil
    import tempfile

    from nas_impl.replication.regress import ENVIRONMENT_FILE
    from nas_impl.reporting.environment import collect_environment

    results, out = Path(args.results), Path(args.out)
    papers = args.papers or sorted({p.parent.parent.name for p in results.glob("*/tables/*.csv")})
    missing = [paper for paper in papers if not any((results / paper / "tables").glob("*.csv"))]
    if not papers or missing:
        where = ", ".join(f"{results}/{paper}/tables/" for paper in missing) or f"{results}/*/tables/"
        raise NasReproError(f"no tables under {where}: run the workflow first")
    tables = sorted(t for paper in papers for t in (results / paper / "tables").glob("*.csv"))
    kept = [] if not args.papers or not out.is_dir() else \
        sorted(t for t in out.glob("*/tables/*.csv") if t.parent.parent.name not in papers)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for root, table in [(out, t) for t in kept] + [(results, t) for t in tables]:
            target = staging / table.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(table, target)
        environment = collect_environment(results)
        if environment.run_count or not kept or not (out / ENVIRONMENT_FILE).is_file():
            environment.values.to_csv(staging / ENVIRONMENT_FILE, index=False)
        else:  # the replaced papers ran nothing (measured only): the kept tables' environment still holds
            shutil.copyfile(out / ENVIRONMENT_FILE, staging / ENVIRONMENT_FILE)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"reference": str(out), "tables": len(tables), "runs": environment.run_count}


class RegressionFound(NasReproError):
    """Results differ from the reference: exit status 1 rather than 2 (bad input), one line per
    difference (a finding, not an error)."""

    exit_code = 1
    multiline = True
