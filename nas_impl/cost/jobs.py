"""The jobs of a workflow run at one scale (`RunPlan`) and the work each does, one row each.

Training and evaluation work is counted here from the recipes; a search's work is what its
method says (`MethodInfo.search_work`, nas_impl/methods/<method>/work.py). Also the claimed
search cost of each search, and the jobs of the workflow's other (host) rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nas_impl.errors import NasReproError
from nas_impl.methods import method_info
from nas_impl.methods.work_units import (EVAL_COST, Network, Part, StageWork, data_size, epochs_text, thousands,
                                         train_subset)
from nas_impl.replication.manifest import Replication
from nas_impl.run_plan import RunPlan

NOT_STATED = "not stated: no experiment retraining this search claims a search_gpu_h row of published.csv"


@dataclass(frozen=True)
class Claim:
    value: float | None  # GPU-hours, or None (not stated)
    text: str  # the source, tags and note, or why there is none


@dataclass
class Job:
    """One row: a job of the workflow (all its seeds alike)."""

    rule: str  # the workflow rule: train, evaluate, search_stage, search
    stage: str  # a search's stage ('' for train and evaluate)
    paper: str
    name: str  # the experiment or search
    seeds: int
    network: Network
    work: float | None  # per job, in the network's unit; None: not projected (see basis)
    parts: tuple[Part, ...]  # what the seconds are computed from (empty when work is None)
    basis: str
    method: str = ""  # a search's method (its measured rates are looked up by method and stage)
    recipe_key: str = ""  # a search stage's recipe fingerprint (a stage without work is matched by it)
    claim: Claim | None = None
    search: str = ""  # the search a searched experiment retrains (critical path)
    teacher: str = ""  # the KD teacher experiment (critical path)
    batch: int = 0  # the job's training batch (what --calibrate times a step at)


def read_spec(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict):
        raise NasReproError(f"{path}: not an architecture spec (a mapping)")
    return spec


# -- training and evaluation --------------------------------------------------------------------------
def training_jobs(plan: RunPlan, paper: str) -> list[Job]:
    """train and evaluate rows of one paper."""
    rep = plan.replications[paper]
    seeds = len(plan.seeds(paper))
    networks = {e: experiment_network(plan, paper, e) for e in plan.experiments(paper)}
    jobs = []
    for name in plan.experiments(paper):
        if not plan.trained(paper, name):
            continue
        exp = rep.experiments[name]
        recipe = rep.recipe(exp.recipe, plan.scale)
        network, bound = networks[name]
        size = data_size(network.dataset)
        n_train = train_subset(recipe, size)
        n_eval = (min(recipe.test_subset, size.test) if recipe.test_subset else
                  (size.valid if size.unit == "tokens" else size.test))
        eval_split = "valid" if size.unit == "tokens" else "test"
        unit = size.unit
        parts = [Part(network, recipe.epochs * n_train), Part(network, recipe.epochs * n_eval, EVAL_COST)]
        basis = (f"{epochs_text(recipe.epochs)} x {thousands(n_train)} training {unit} + {recipe.epochs} x "
                 f"{thousands(n_eval)} {eval_split} {unit} at 1/3 (forward only)")
        if recipe.distill is not None and exp.teacher:
            teacher, _ = networks[exp.teacher]
            parts.append(Part(teacher, recipe.epochs * n_train, EVAL_COST))
            basis += f"; KD: + the teacher's forward ({exp.teacher}) at 1/3 per training {unit[:-1]}"
        if bound:
            basis += f"; network: the search's base ({bound})"
        work = recipe.epochs * (n_train + n_eval)
        jobs.append(Job("train", "", paper, name, seeds, network, work, tuple(parts), basis,
                        search=exp.search or "", teacher=exp.teacher if recipe.distill is not None else "",
                        batch=recipe.batch_size))
        n_test = min(recipe.test_subset, size.test) if recipe.test_subset else size.test
        jobs.append(Job("evaluate", "", paper, name, seeds, network, n_test, (Part(network, n_test, EVAL_COST),),
                        f"{thousands(n_test)} test {unit} at 1/3 (forward only)", batch=recipe.batch_size))
    return jobs


def experiment_network(plan: RunPlan, paper: str, experiment: str) -> tuple[Network, str]:
    """The network an experiment trains, and, for a searched one, how its base bounds the shape
    (the method's `shape_bound`: the searched shape is unknown before the search)."""
    rep = plan.replications[paper]
    exp = rep.experiments[experiment]
    path = rep.arch_path(experiment)
    network = Network.of(path.stem, read_spec(path), plan.run_dataset(paper, experiment))
    if exp.search is None:
        return network, ""
    described = method_info(rep.searches[exp.search].method).search_work
    return network, described.shape_bound if described is not None else "approximate"


# -- searches -----------------------------------------------------------------------------------------
def planned_searches(plan: RunPlan, paper: str) -> list[str]:
    """The searches whose shapes the planned experiments need (each run once per seed)."""
    rep = plan.replications[paper]
    needed = {rep.experiments[e].search for e in plan.experiments(paper) if rep.experiments[e].search}
    return [s for s in rep.searches if s in needed]


def search_work(rep: Replication, search: str, scale: str, dataset: str, recipe: Any = None) -> list[StageWork]:
    """The work of every stage of one search at one scale (or of `recipe`, a run's recorded one), as
    its method describes it; a stage it does not describe has no work (work None), and says why."""
    entry = rep.searches[search]
    info = method_info(entry.method)
    recipe = recipe if recipe is not None else rep.search_recipe(search, scale)
    base_path = rep.search_arch_path(search)
    base = Network.of(base_path.stem, read_spec(base_path), dataset)
    by_stage = info.search_work.stages(recipe, base) if info.search_work is not None else {}
    out = []
    for stage in info.stage_names:
        found = by_stage.get(stage)
        if found is None:
            why = ("its work is not projected" if info.search_work is not None else
                   "its work is not projected (the method describes no search work: MethodInfo.search_work)")
            found = StageWork(stage, None, (), f"stage '{stage}' of {entry.method}: {why}; only a measured run of "
                                                "the same recipe on this device prices it", base)
        out.append(found)
    return out


def recipe_key(recipe: Any) -> str:
    data = recipe.to_dict()
    data.pop("sources", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:12]


def search_jobs(plan: RunPlan, paper: str) -> list[Job]:
    """search and search_stage rows of one paper: one a stage of each planned search (the last: search)."""
    rep = plan.replications[paper]
    seeds = len(plan.seeds(paper))
    jobs = []
    for search in planned_searches(plan, paper):
        entry = rep.searches[search]
        recipe = rep.search_recipe(search, plan.scale)
        stages = search_work(rep, search, plan.scale, plan.search_dataset(paper, search), recipe)
        last = method_info(entry.method).stages[-1].name
        claim = search_claim(rep, search)
        for sw in stages:
            jobs.append(Job("search" if sw.stage == last else "search_stage", sw.stage, paper, search, seeds,
                            sw.network, sw.work, sw.parts, sw.basis, method=entry.method,
                            recipe_key=recipe_key(recipe), claim=claim if sw.stage == last else None,
                            batch=recipe.weights.batch_size))
    return jobs


def search_claim(rep: Replication, search: str) -> Claim:
    """The search cost the paper claims for this search: a `search_gpu_h` row of published.csv that an
    experiment retraining the search's shape claims; else what the method's references say (its
    `search_work.cost_note`)."""
    rows = {(r.table, r.model): r for r in rep.published if r.metric == "search_gpu_h"}
    for exp in rep.experiments.values():
        if exp.search != search:
            continue
        for claim in exp.claims:
            row = rows.get((claim.table, claim.model))
            if row is not None:
                note = re.sub(r"\s+", " ", row.note).strip()
                return Claim(row.value, f"published.csv {row.table}/{row.model}: {row.source}; {note}")
    described = method_info(rep.searches[search].method).search_work
    return Claim(None, described.cost_note if described is not None and described.cost_note else NOT_STATED)


def plan_jobs(plan: RunPlan) -> list[Job]:
    return [job for paper in plan.replications for job in search_jobs(plan, paper) + training_jobs(plan, paper)]


# -- the workflow's other rules -----------------------------------------------------------------------
# Bookkeeping on the host (measure_latency: seconds on the device), not priced as work.
HOST_RULES = ("prepare_data", "recipe", "search_recipe", "reference_archs", "searched_arch", "measure_latency",
              "latency_targets", "compare", "plot", "report")


def host_jobs(plan: RunPlan) -> dict[str, int]:
    """Jobs of each of the workflow's other rules in this plan."""
    counts = dict.fromkeys(HOST_RULES, 0)
    datasets: set[str] = set()
    for paper, rep in plan.replications.items():
        seeds = len(plan.seeds(paper))
        experiments = plan.experiments(paper)
        trained = [e for e in experiments if plan.trained(paper, e)]
        searches = planned_searches(plan, paper)
        datasets |= {plan.run_dataset(paper, e) for e in trained} | {plan.search_dataset(paper, s) for s in searches}
        counts["recipe"] += len({rep.experiments[e].recipe for e in trained})
        counts["search_recipe"] += len(searches)
        counts["reference_archs"] += seeds if plan.reference_experiments(paper) else 0
        counts["searched_arch"] += seeds * sum(1 for e in experiments if rep.experiments[e].search)
        counts["measure_latency"] += seeds * len(plan.timed_experiments(paper))
        counts["latency_targets"] += 1 if plan.latency_targeted_experiments(paper) else 0
        counts["compare"] += len(rep.tables)
        counts["plot"] += len(rep.tables)
    counts["prepare_data"] = len(datasets)
    counts["report"] = 1
    return {rule: n for rule, n in counts.items() if n}
