"""`nasrepro cost`: the device-hours of every job of a replication at one scale, before it runs.

Prints a table (rule, paper, job, seeds, work, rate, source of the rate, device-hours), the totals
per paper and for N devices, and each paper's claimed search cost beside its projected search
hours; writes the rows as CSV (`nas_impl.cost`). Without --calibrate it reads YAML,
CSV and JSON only (no torch).
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
from pathlib import Path

from nas_impl.errors import NasReproError
from nas_impl.host import cpu_name

SCALES = ("smoke", "reduced", "paper")
REPO = Path(__file__).resolve().parents[2]


def add_parser(verbs) -> None:
    p = verbs.add_parser("cost", help="project the device-hours of every job of a replication at a scale, "
                                      "before it runs")
    p.add_argument("--scale", required=True, help="smoke, reduced or paper")
    p.add_argument("--papers", default="", help="comma-separated replications (default: all of them)")
    p.add_argument("--device", default=None,
                   help="the device to price: a recorded device name (e.g. 'NVIDIA H100 80GB HBM3', 'AMD EPYC'), "
                        "or auto, cpu, cuda[:N] for one of this machine's (default: auto: its GPU, else its CPU)")
    p.add_argument("--gpus", type=int, default=None,
                   help="devices to divide the total by, as ideal scaling (default: the manifests' resources, else 1)")
    p.add_argument("--calibrate", action="store_true",
                   help="time a few training steps of each network whose rate is not measured on this device, "
                        "and cache them in RESULTS/cost/calibration.json")
    p.add_argument("--max-networks", type=int, default=None,
                   help="calibrate at most this many networks (heaviest first)")
    p.add_argument("--budget", type=float, default=300.0,
                   help="seconds of calibration; checked before each network (default 300)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per network, after 2 warm-up steps (default 3)")
    p.add_argument("--calibrate-batch", type=int, default=None,
                   help="largest batch a calibration step uses (default: the recipe's on CUDA, at most 32 on a CPU)")
    p.add_argument("--results", default="results",
                   help="where earlier runs and the calibration cache are (default results)")
    p.add_argument("--replications", default=None,
                   help="the replications folder (default: ./replications, else the suite's)")
    p.add_argument("--out", default=None, help="CSV to write (default RESULTS/<scale>/cost.csv)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of a calibration (default: $OMP_NUM_THREADS, else every core)")
    p.set_defaults(func=cost)


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise NasReproError(f"--scale '{scale}' is not a scale{_suggest(scale, list(SCALES))}; "
                            f"use one of {', '.join(SCALES)}")
    return scale


def replications_root(option: str | None) -> Path:
    here = Path("replications")
    root = Path(option) if option else (here if here.is_dir() else REPO / "replications")
    if not root.is_dir():
        raise NasReproError(f"--replications {root}: no such folder; name the folder holding replications/<paper>/")
    return root


def select_papers(option: str, implemented: list[str]) -> list[str]:
    papers = [p.strip() for p in option.split(",") if p.strip()]
    for paper in papers:
        if paper not in implemented:
            raise NasReproError(f"--papers: '{paper}' is not a replication{_suggest(paper, implemented)}; "
                                f"known: {', '.join(implemented)}")
    return papers or implemented


def gpu_name(index: int = 0) -> str | None:
    """A GPU's name from nvidia-smi (what torch.cuda.get_device_name gives), without torch; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out if line.strip()]
    return names[index] if index < len(names) else None


def _is_local(option: str | None) -> bool:
    return option in (None, "auto", "cpu", "cuda") or (option or "").startswith("cuda:")


def resolve_device(option: str | None, calibrate: bool) -> tuple[str, object]:
    """(device name to price, torch device to calibrate on or None)."""
    if not calibrate:
        if not _is_local(option):
            return str(option), None
        if option == "cpu":
            return cpu_name(), None
        index = int(option.split(":", 1)[1]) if option and option.startswith("cuda:") else 0
        gpu = gpu_name(index)
        if gpu is None and option and option.startswith("cuda"):
            raise NasReproError(f"--device {option}: no GPU found (nvidia-smi); name the device instead, "
                                "e.g. --device 'NVIDIA H100 80GB HBM3'")
        return gpu or cpu_name(), None
    import torch

    from nas_impl.metrics.latency import device_name

    if _is_local(option):
        wanted = "cuda" if option in (None, "auto") and torch.cuda.is_available() else (option or "cpu")
        wanted = "cpu" if wanted == "auto" else wanted
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise NasReproError(f"--device {option}: CUDA is not available here; calibrate on cpu, or price a GPU "
                                "by name from its measured runs or a calibration made on it")
        device = torch.device(wanted)
        return device_name(device), device
    for candidate in (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]:
        device = torch.device(candidate)
        if " ".join(device_name(device).split()).lower() == " ".join(str(option).split()).lower():
            return device_name(device), device
    raise NasReproError(f"--device '{option}' with --calibrate: this machine has no such device (it has "
                        f"'{device_name(torch.device('cpu'))}'{' and a GPU' if torch.cuda.is_available() else ''}); "
                        "--calibrate times the devices it runs on: use --device auto, cpu or cuda")


def cost(args: argparse.Namespace) -> dict:
    from nas_impl.plan import discover_replications
    from nas_impl.replication import load_replication
    from nas_impl import cost as costing
    from nas_impl.run_plan import RunPlan

    scale = check_scale(args.scale)
    if args.gpus is not None and args.gpus < 1:
        raise NasReproError(f"--gpus {args.gpus}: must be a positive number of devices")
    root = replications_root(args.replications)
    papers = select_papers(args.papers, discover_replications(root))
    replications = {paper: load_replication(root / paper) for paper in papers}
    plan = RunPlan(replications, scale)
    device, torch_device = resolve_device(args.device, args.calibrate)
    results = Path(args.results)
    rates = costing.Rates.from_results(device, results, replications)
    projection = costing.project(plan, rates, args.gpus, results)
    calibrated = 0
    if args.calibrate:
        from nas_impl.cost import calibrate

        known = rates.calibrated()
        todo = [n for n in costing.networks_to_calibrate(projection) if n[0].key not in known]
        entries = calibrate.calibrate(todo, torch_device, steps=args.steps, batch_cap=args.calibrate_batch,
                                      budget_s=args.budget, max_networks=args.max_networks)
        if entries:
            calibrate.save(results, device, entries)
        calibrated = len(entries)
        rates = costing.Rates.from_results(device, results, replications)
        projection = costing.project(plan, rates, args.gpus, results)
    out = Path(args.out) if args.out else results / scale / "cost.csv"
    costing.write_csv(projection, out)
    sys.stdout.write(costing.render(projection) + f"\nCSV: {out}\n\n")
    return {**costing.summary(projection, out), "calibrated_now": calibrated}
