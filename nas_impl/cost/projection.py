"""Pricing: each job's work at its rate, the totals (per paper, per rule, on N devices, the critical
path), the rows of cost.csv, and what `--calibrate` should time first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_impl.cost.jobs import Claim, Job, host_jobs, plan_jobs, planned_searches
from nas_impl.cost.rates import UNKNOWN, Rate, Rates, host_seconds
from nas_impl.methods.work_units import Network
from nas_impl.run_plan import RunPlan

COLUMNS = ["rule", "stage", "paper", "job", "seeds", "network", "input", "work", "unit", "rate", "rate_unit",
           "effective_rate", "source", "device_h_per_job", "device_h", "claimed_gpu_h", "claim", "basis"]


@dataclass
class Priced:
    job: Job
    rate: Rate  # the rate the row is priced with: its network's training rate, or a search stage's own
    seconds: float | None  # per job

    @property
    def device_h(self) -> float | None:
        return None if self.seconds is None else self.seconds * self.job.seeds / 3600

    @property
    def effective(self) -> float | None:
        """The job's work per second (evaluation runs 3x the training rate, a search step slower)."""
        if self.seconds is None or self.job.work is None or not self.seconds:
            return None
        return self.job.work / self.seconds


def price(job: Job, rates: Rates) -> Priced:
    own = rates.stage(job) if job.rule.startswith("search") else None
    if own is not None:
        seconds = 1 / own.value if job.work is None else job.work / own.value
        return Priced(job, own, seconds)
    if job.work is None:
        return Priced(job, Rate(None, "unknown", "work not projected; no measured run of this recipe"), None)
    found = [(part, rates.plain(part.network)) for part in job.parts]
    missing = [part for part, rate in found if rate.value is None]
    main = found[0][1]
    if missing:
        name = missing[0].network.name
        detail = UNKNOWN.detail if missing[0].network == job.network else f"{name} (KD teacher): {UNKNOWN.detail}"
        return Priced(job, Rate(main.value, "unknown", detail), None)
    seconds = sum(part.step_equivalents / rate.value for part, rate in found)
    others = sorted({f"{part.network.name} {rate.source}" for part, rate in found[1:]
                     if part.network != job.network})
    detail = main.detail + (f"; {', '.join(others)}" if others else "")
    return Priced(job, Rate(main.value, main.source, detail), seconds)


@dataclass
class Projection:
    scale: str
    device: str
    gpus: int
    gpus_from: str
    rows: list[Priced]
    others: dict[str, tuple[int, float | None, int]] = field(default_factory=dict)  # rule -> (jobs, median s, files)

    def rule_totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for row in self.rows:
            if row.device_h is not None:
                rule = "search" if row.job.rule.startswith("search") else row.job.rule
                out[rule] = out.get(rule, 0.0) + row.device_h
        return out

    def paper_totals(self) -> dict[str, dict[str, Any]]:
        totals: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            t = totals.setdefault(row.job.paper, {"device_h": 0.0, "unknown_jobs": 0, "by_rule": {}})
            if row.device_h is None:
                t["unknown_jobs"] += row.job.seeds
                continue
            t["device_h"] += row.device_h
            rule = "search" if row.job.rule.startswith("search") else row.job.rule
            t["by_rule"][rule] = t["by_rule"].get(rule, 0.0) + row.device_h
        return totals

    @property
    def total_h(self) -> float:
        return sum(r.device_h for r in self.rows if r.device_h is not None)

    @property
    def unknown_jobs(self) -> int:
        return sum(r.job.seeds for r in self.rows if r.device_h is None)

    def critical_path_h(self) -> float:
        """The longest chain of one seed (search stages -> KD teacher's training -> training ->
        evaluation), over the jobs whose hours are known: no number of devices finishes sooner."""
        per = {(r.job.paper, r.job.rule, r.job.name, r.job.stage): r.seconds for r in self.rows}
        search_s: dict[tuple[str, str], float] = {}
        for r in self.rows:
            if r.job.rule.startswith("search") and r.seconds is not None:
                key = (r.job.paper, r.job.name)
                search_s[key] = search_s.get(key, 0.0) + r.seconds
        jobs = {(r.job.paper, r.job.name): r.job for r in self.rows if r.job.rule == "train"}

        def finish(paper: str, name: str, depth: int = 0) -> float:
            job = jobs.get((paper, name))
            if job is None or depth > 20:
                return 0.0
            before = max(search_s.get((paper, job.search), 0.0) if job.search else 0.0,
                         finish(paper, job.teacher, depth + 1) if job.teacher else 0.0)
            return before + (per.get((paper, "train", name, "")) or 0.0)

        chains = [finish(p, n) + (per.get((p, "evaluate", n, "")) or 0.0) for p, n in jobs]
        longest = max(chains + list(search_s.values()) + [0.0])
        return longest / 3600


def default_gpus(plan: RunPlan) -> tuple[int, str]:
    """The most GPUs a planned job's manifest `resources` ask for at this scale, else 1."""
    asked = []
    for paper, rep in plan.replications.items():
        for e in plan.experiments(paper):
            asked.append(rep.experiments[e].resources.get(plan.scale, {}).get("gpu"))
        for s in planned_searches(plan, paper):
            asked.append(rep.searches[s].resources.get(plan.scale, {}).get("gpu"))
    asked = [int(g) for g in asked if g]
    if asked:
        return max(asked), "the largest 'gpu' of the manifests' resources at this scale"
    return 1, "no manifest sets 'resources: gpu' at this scale"


def project(plan: RunPlan, rates: Rates, gpus: int | None = None, results: Path | None = None) -> Projection:
    rows = [price(job, rates) for job in plan_jobs(plan)]
    chosen, why = (gpus, "--gpus") if gpus else default_gpus(plan)
    measured = host_seconds(results) if results is not None else {}
    others = {rule: (n, *measured.get(rule, (None, 0))) for rule, n in host_jobs(plan).items()}
    return Projection(plan.scale, rates.device, chosen, why, rows, others)


def search_hours(projection: Projection) -> dict[tuple[str, str], tuple[float, list[str], Claim]]:
    """(paper, search) -> (device-hours of one seed's known stages, stages of unknown cost, claim)."""
    out: dict[tuple[str, str], tuple[float, list[str], Claim]] = {}
    for r in projection.rows:
        if not r.job.rule.startswith("search"):
            continue
        hours, missing, claim = out.get((r.job.paper, r.job.name), (0.0, [], Claim(None, "not stated")))
        if r.seconds is None:
            missing = [*missing, r.job.stage]
        else:
            hours += r.seconds / 3600
        out[(r.job.paper, r.job.name)] = (hours, missing, r.job.claim or claim)
    return out


# -- cost.csv and the command's summary ---------------------------------------------------------------
def csv_rows(projection: Projection) -> list[dict[str, Any]]:
    rows = []
    for r in projection.rows:
        j = r.job
        rows.append({
            "rule": j.rule, "stage": j.stage, "paper": j.paper, "job": j.name, "seeds": j.seeds,
            "network": j.network.name, "input": j.network.input,
            "work": "" if j.work is None else round(j.work), "unit": j.network.unit if j.work is not None else "job",
            "rate": "" if r.rate.value is None else f"{r.rate.value:.6g}",
            "rate_unit": f"{j.network.unit}/s" if j.work is not None else "jobs/s",
            "effective_rate": "" if r.effective is None else f"{r.effective:.6g}",
            "source": f"{r.rate.source}: {r.rate.detail}",
            "device_h_per_job": "" if r.seconds is None else f"{r.seconds / 3600:.6g}",
            "device_h": "" if r.device_h is None else f"{r.device_h:.6g}",
            "claimed_gpu_h": "" if j.claim is None or j.claim.value is None else f"{j.claim.value:g}",
            "claim": "" if j.claim is None else j.claim.text, "basis": j.basis,
        })
    for rule, (jobs, seconds, files) in projection.others.items():
        rows.append({"rule": rule, "paper": "all", "work": jobs, "unit": "jobs",
                     "source": f"host job, not device work: median of {files} benchmark(s) under results/*/benchmarks"
                               if seconds is not None else "host job, not device work: never measured",
                     "basis": f"{jobs} job(s)" + (f" x {seconds:.3g} s = {jobs * seconds / 3600:.3g} h" if seconds
                                                  is not None else "")})
    for paper, t in projection.paper_totals().items():
        rows.append({"rule": "total", "paper": paper, "device_h": f"{t['device_h']:.6g}",
                     "basis": f"sum of the rows with a known rate; {t['unknown_jobs']} job(s) of unknown rate "
                              "left out"})
    total = projection.total_h
    rows.append({"rule": "total", "paper": "all", "device_h": f"{total:.6g}",
                 "basis": f"1 device; {projection.unknown_jobs} job(s) of unknown rate left out"})
    rows.append({"rule": f"total / {projection.gpus} devices", "paper": "all",
                 "device_h": f"{total / projection.gpus:.6g}",
                 "basis": f"ideal scaling (total / {projection.gpus}; {projection.gpus_from}): wall-clock hours if "
                          f"no job waited; no fewer than the critical path, {projection.critical_path_h():.6g} h"})
    return rows


def write_csv(projection: Projection, path: str | Path) -> None:
    from nas_impl.io import write_csv_rows_atomic

    write_csv_rows_atomic(path, csv_rows(projection), COLUMNS)


def summary(projection: Projection, out: str | Path) -> dict[str, Any]:
    totals = projection.paper_totals()
    return {"scale": projection.scale, "device": projection.device, "out": str(out),
            "device_h": round(projection.total_h, 3), "gpus": projection.gpus,
            "ideal_wall_h": round(projection.total_h / projection.gpus, 3),
            "critical_path_h": round(projection.critical_path_h(), 3),
            "unknown_jobs": projection.unknown_jobs,
            "papers": {p: {"device_h": round(t["device_h"], 3), "unknown_jobs": t["unknown_jobs"]}
                       for p, t in totals.items()},
            "by_rule": {rule: round(h, 3) for rule, h in sorted(projection.rule_totals().items())},
            "sources": dict(sorted(_count(r.rate.source.split(" ")[0] for r in projection.rows).items()))}


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def networks_to_calibrate(projection: Projection) -> list[tuple[Network, int, float]]:
    """(network, training batch, step-equivalents it prices) of every network that a row prices
    without a measured rate, the heaviest first (what a time budget should go to first); the batch is
    that of the heaviest job's recipe at the projection's scale."""
    weight: dict[str, float] = {}
    chosen: dict[str, tuple[Network, int, float]] = {}
    for r in projection.rows:
        if r.rate.source.startswith("measured") and r.rate.value is not None:
            continue
        for part in r.job.parts:
            load = part.step_equivalents * r.job.seeds
            weight[part.network.key] = weight.get(part.network.key, 0.0) + load
            if part.network.key not in chosen or load > chosen[part.network.key][2]:
                chosen[part.network.key] = (part.network, r.job.batch, load)
    order = sorted(weight, key=lambda k: (-weight[k], chosen[k][0].name))
    return [(chosen[k][0], chosen[k][1], weight[k]) for k in order]
