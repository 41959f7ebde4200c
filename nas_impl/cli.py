"""`nasrepro <verb>`: the command line every workflow rule calls.

Each verb prints a JSON summary on stdout (and writes it to --out where the verb takes one).
Any failure prints one line, `nasrepro <verb>: error: ...`, naming the file or key and the fix,
never a traceback: status 2 for a user error, 130 when interrupted (Ctrl-C or SIGTERM; the
last complete checkpoint stays valid), 3 for an internal error (NASREPRO_DEBUG=1 shows its
traceback); `regress` exits with status 1 when the results differ from the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from nas_impl.commands import cost, results, runs
from nas_impl.errors import NasReproError, describe_os_error
from nas_impl.io import write_json_atomic
from nas_impl.methods import method_names

SCALES = ("smoke", "reduced", "paper")


def _data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="dataset root (default: $NASREPRO_DATA or ./data)")


def _run_options(p: argparse.ArgumentParser, checkpoint: str) -> None:
    """Seed, device, resume and interruption: the options of every verb that trains for epochs."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--resume", action="store_true", help=f"continue from OUT/{checkpoint} if present")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch (resume later)")
    _threads(p)
    _data_root(p)


def _threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of torch's kernels (default: $OMP_NUM_THREADS, else every core); CPU results "
                        "are bit-identical for the same count on any machine, and differ between counts")


def _add_run_verbs(verbs) -> None:
    p = verbs.add_parser("prepare-data", help="find a dataset, verify its checksums, print a summary")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", dest="out_json", help="write the summary JSON here")
    _data_root(p)
    p.set_defaults(func=runs.prepare_data)

    p = verbs.add_parser("arch", help="an experiment's reference architecture as a normalised spec")
    p.add_argument("--replication", required=True, help="replications/<paper>")
    p.add_argument("--experiment", required=True)
    p.add_argument("--searched", default=None,
                   help="for an experiment with a search: the search's arch.yaml, or its search.json for an "
                        "experiment with a search_target")
    p.add_argument("--out", required=True, help="arch.yaml to write")
    p.add_argument("--metrics-out", default=None,
                   help="also write its architecture metrics here (what `nasrepro metrics --dataset` prints)")
    p.set_defaults(func=runs.arch)

    p = verbs.add_parser("archs", help="arch.yaml and arch_metrics.json of many runs with reference specs, at once")
    p.add_argument("--replication", required=True, help="replications/<paper>")
    p.add_argument("--results", required=True, help="results/<scale>/<paper>: writes EXPERIMENT/seedK/arch*.y*")
    p.add_argument("--experiment", required=True, nargs="+", help="experiments without a search")
    p.add_argument("--seed", required=True, nargs="+", type=int)
    p.set_defaults(func=runs.archs)

    p = verbs.add_parser("recipe", help="write the recipe of one scale as a standalone YAML file")
    p.add_argument("--replication", required=True, help="replications/<paper>")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", help="a training recipe (a key of recipes)")
    which.add_argument("--search", help="the search recipe of this search (a key of searches)")
    p.add_argument("--scale", required=True, choices=SCALES)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe value (repeatable)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=runs.recipe)

    p = verbs.add_parser("train", help="train an architecture spec with a recipe")
    p.add_argument("--arch", required=True, help="architecture spec YAML or registered model name")
    p.add_argument("--recipe", required=True, help="recipe YAML")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="run directory (checkpoint.pt, train_log.csv, metrics.json)")
    p.add_argument("--teacher", default=None, help="checkpoint.pt of the distillation teacher (recipes with 'distill')")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step's network (same math; compiles once, then faster steps)")
    _run_options(p, "checkpoint.pt")
    p.set_defaults(func=runs.train)

    p = verbs.add_parser("search", help="search an architecture and write the derived arch.yaml")
    p.add_argument("--method", required=True, choices=method_names())
    p.add_argument("--arch", required=True, help="the unpruned base network's spec YAML or registered name")
    p.add_argument("--recipe", required=True, help="search recipe YAML")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="search directory (arch.yaml, search.json, logs)")
    p.add_argument("--stage", default=None,
                   help="run one stage of the method (autoslim: supernet, slim; tas: search); default: all, in order")
    _run_options(p, "search_checkpoint.pt")
    p.set_defaults(func=runs.search)

    p = verbs.add_parser("evaluate", help="evaluate a checkpoint on a split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", default=None, help="default: the dataset it was trained on")
    p.add_argument("--split", choices=("test", "train", "valid"), default="test", help="valid: a language model's validation split")
    p.add_argument("--device", default="auto")
    _threads(p)
    p.add_argument("--out", dest="out_json", help="write the result JSON here")
    _data_root(p)
    p.set_defaults(func=runs.evaluate)

    p = verbs.add_parser("metrics", help="params, MACs, memory (and latency) of an architecture spec")
    p.add_argument("spec", help="architecture spec YAML or registered model name")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--input-size", default=None,
                      help="CxHxW (default: the spec's own input, 32x32 for CIFAR families, 224x224 for ImageNet ones)")
    size.add_argument("--dataset", help="take the input size from this dataset (e.g. imagenet: 3x224x224)")
    p.add_argument("--json", action="store_true", help="print JSON (the default output format)")
    p.add_argument("--latency", action="store_true", help="also time inference")
    p.add_argument("--batch-size", type=int, default=None,
                   help="latency batch (default: 1 on a CPU, 8 on a GPU, as ProxylessNAS's Table 3 measures)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", dest="out_json", help="write the JSON here")
    p.set_defaults(func=runs.metrics)


def _add_result_verbs(verbs) -> None:
    p = verbs.add_parser("compare", help="published vs reproduced tables of one replication at one scale")
    p.add_argument("--replication", required=True, help="replications/<paper>")
    p.add_argument("--results", required=True, help="results/<scale>/<paper>")
    p.add_argument("--scale", required=True, choices=SCALES)
    p.add_argument("--out-dir", required=True, help="where <table>.csv files go")
    p.add_argument("--table", help="write only this table (default: every table of the replication)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="the seeds that were run (default: the replication's seeds at this scale)")
    p.set_defaults(func=results.compare)

    p = verbs.add_parser("latency-targets",
                         help="searched nets' measured latency beside their search's target and lookup-table prediction")
    p.add_argument("--replication", required=True, help="replications/<paper>")
    p.add_argument("--results", required=True, help="results/<scale>/<paper>")
    p.add_argument("--experiments", nargs="+", required=True, help="the latency-targeted searched experiments")
    p.add_argument("--seeds", nargs="+", type=int, required=True)
    p.add_argument("--out", required=True, help="latency_targets.csv to write")
    p.set_defaults(func=results.latency_targets)

    p = verbs.add_parser("plot", help="plot one comparison table")
    p.add_argument("--table", required=True)
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(func=results.plot)

    p = verbs.add_parser("report", help="scorecard.csv and report.html of one scale")
    p.add_argument("--results", required=True, help="results/<scale>")
    p.add_argument("--out", required=True, help="report.html to write")
    p.add_argument("--scorecard", required=True, help="scorecard.csv to write")
    p.add_argument("--tables", nargs="*", help="default: RESULTS/*/tables/*.csv")
    p.add_argument("--plots", nargs="*", help="default: RESULTS/*/plots/*.png")
    p.add_argument("--benchmarks", help="Snakemake benchmark files (default: RESULTS/benchmarks)")
    p.add_argument("--latency-targets", nargs="*", default=None,
                   help="latency_targets.csv files (default: RESULTS/*/latency_targets.csv)")
    p.add_argument("--projected-cost", default=None,
                   help="a cost.csv of `nasrepro cost`, shown as 'Projected cost' (default: RESULTS/cost.csv if present)")
    p.set_defaults(func=results.report)

    p = verbs.add_parser("regress", help="check results tables against committed reference tables")
    p.add_argument("results", help="e.g. results/smoke")
    p.add_argument("reference", help="e.g. results/reference/smoke")
    p.add_argument("--accuracy-tolerance", type=float, default=2.0,
                   help="least tolerance in points of accuracy (default 2.0); rows whose reference has a spread "
                        "over seeds get more (nas_impl/replication/regress.py)")
    p.add_argument("--out", dest="out_json", help="write the JSON summary here when nothing differs")
    p.set_defaults(func=results.regress)

    p = verbs.add_parser("reference", help="make a results folder's tables the reference regress checks against")
    p.add_argument("--results", required=True, help="e.g. results/smoke (run with several seeds: make reference)")
    p.add_argument("--out", required=True, help="e.g. results/reference/smoke (replaced)")
    p.add_argument("--papers", nargs="+", metavar="PAPER",
                   help="replace only these papers' reference tables, keeping the others' (default: every paper "
                        "with tables under --results)")
    p.set_defaults(func=results.reference)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasrepro", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    _add_run_verbs(verbs)
    _add_result_verbs(verbs)
    cost.add_parser(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)  # a scheduler's kill ends like Ctrl-C
    try:
        _set_threads(getattr(args, "threads", None))
        result = args.func(args)
        if getattr(args, "out_json", None):
            write_json_atomic(args.out_json, result)
    except BaseException as err:  # noqa: BLE001 - every failure becomes one line (see user_error)
        message, code = user_error(err)
        print(f"nasrepro {args.verb}: error: {message}", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(result, indent=2, default=str))
    return 0


def user_error(err: BaseException) -> tuple[str, int]:
    """(one-line message, exit status) for any failure of a verb; re-raises what is not a failure
    (SystemExit) and, with NASREPRO_DEBUG=1, everything unexpected, traceback and all."""
    if isinstance(err, NasReproError):
        message = str(err) if getattr(err, "multiline", False) else _one_line(str(err))
        return message, getattr(err, "exit_code", 2)
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (files written so far are complete; a training resumes with --resume)", 130
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{describe_os_error(err)}; fix the path or its permissions, or free space, and rerun", 2
    if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
        return ("out of memory: lower the recipe's 'batch_size' or 'eval_batch_size' (nasrepro recipe --set "
                "batch_size=...), or use a device with more memory"), 2
    if isinstance(err, SystemExit) or os.environ.get("NASREPRO_DEBUG"):
        raise err
    return (f"internal error ({type(err).__name__}: {_one_line(str(err))}); this is a bug in nas-repro: rerun "
            "with NASREPRO_DEBUG=1 to see where, and report it"), 3


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise NasReproError(f"--threads {threads}: must be a positive integer")
    import torch

    torch.set_num_threads(threads)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
