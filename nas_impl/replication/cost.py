"""What a replication costs, before it runs: the device-hours of every job of a workflow run.

For each training, evaluation and search job the workflow would run at one scale (`RunPlan`),
the *work* is counted from the manifests and recipes: the images (tokens for a language model)
that pass through a network, forward and backward, and evaluation passes at a third of that
(forward only). A *rate* turns work into seconds: the images (tokens) per second of a plain
training step of that network, at the dataset's input size, on the named device. Rates come from,
in order:

1. **measured**: earlier runs under `results/<scale>/` on a device of the same name
   (`metrics.json` `run.device_name`): a training's `train_log.csv` (`images_per_s` /
   `tokens_per_s`, median over epochs) for the same network and input size; for a search stage,
   its benchmark `.tsv` (or the sum of its log's `epoch_s`, when larger: a resumed job's benchmark
   covers its last attempt only), divided into the work that run did;
2. **calibrated**: `nasrepro cost --calibrate` times a few plain SGD steps of each network on the
   current device (`nas_impl.replication.calibrate`) and caches the rates in
   `results/cost/calibration.json`, keyed by device name;
3. otherwise **unknown**: the row says so and adds nothing to the totals.

A search step is not a plain step: each method's work counts what its search passes through the
network, at a cost per image (plain training steps per image) that the row's `basis` states,
with where the number comes from. Nothing here imports torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas_impl.errors import NasReproError
from nas_impl.replication.manifest import SCALES, Replication
from nas_impl.run_plan import RunPlan

CALIBRATION_FILE = "cost/calibration.json"  # under the results folder
CALIBRATION_FORMAT = "nasrepro-cost-calibration-v1"
EVAL_COST = 1 / 3  # an evaluation image (token): a forward pass, about a third of a training step

# Dataset facts, torch-free (nas_impl.data.registry imports torch; tests/unit/test_cost.py checks
# these against it): unit, input, classes (vocabulary), training and test sizes (PTB: valid too).
PTB_TRAIN_LINES = 42_068  # lines of ptb.train.txt (Mikolov's file)


@dataclass(frozen=True)
class DataSize:
    unit: str  # images or tokens
    input: str  # "3x32x32", or "tokens"
    classes: int
    train: int
    test: int
    valid: int = 0  # a language model's validation split (evaluated after every epoch)


DATA_SIZES: dict[str, DataSize] = {
    "fashion-mnist": DataSize("images", "1x28x28", 10, 60_000, 10_000),
    "cifar10": DataSize("images", "3x32x32", 10, 50_000, 10_000),
    "cifar10-jpg": DataSize("images", "3x32x32", 10, 50_000, 10_000),
    "cifar100": DataSize("images", "3x32x32", 100, 50_000, 10_000),
    "imagenet": DataSize("images", "3x224x224", 1000, 1_281_167, 50_000),
    "ptb": DataSize("tokens", "tokens", 10_000, 929_589, 82_430, valid=73_760),
}

# Keys of a spec that do not change a step's cost (much): the head and stem follow the dataset.
IGNORED_SPEC_KEYS = frozenset({"num_classes", "vocab_size", "in_channels"})

# Where a search's retrained shape stands against its base network (the shape is unknown before the search).
SHAPE_BOUND = {
    "tas": "upper bound: the searched shape is pruned from the base network",
    "autoslim": "upper bound: the slimmed shape has fewer channels than the base network",
    "autoshrink": "upper bound for the CNN cell (a subset of the complete DAG's edges); approximate for the RNN cell",
    "memnas": "lower bound: the searched net grows from the round-0 base by one cell a round",
    "proxylessnas": "approximate: the base chain's widths and depths; its kernels and expansions are searched",
}

# The cost of one search image in plain training steps, with where the number comes from.
TAS_STEP = 3.5  # README "Search steps": a TAS step (weight batch + architecture batch) = 3.27-3.56 plain steps (CPU)
AUTOSLIM_SANDWICH = 2.5  # README "Search steps": a sandwich step = 2.2-2.85 plain steps of the full-width super-net
PROXYLESS_ARCH_STEP = 2.17  # README "Search steps": a full_v2 architecture step = 2.17 weight steps (CPU, once)

# What the references say of a search cost where published.csv has no `search_gpu_h` row for a search.
SEARCH_COST_NOTES = {
    "tas": "not stated: the paper reports no search GPU-hours [unverified] (../shared/reference/tas.md §1.3)",
    "autoslim": "not stated: no GPU-hour figure is published [secondary] (../shared/reference/autoslim.md, "
                "'Search cost')",
    "memnas": "not stated: not in the README, code or abstract [unknown; check the paper] "
              "(../shared/reference/memnas.md §1)",
    "proxylessnas": "not stated for these searches: Table 1's 200 GPU-h are the mobile searches' "
                    "(../shared/reference/proxylessnas.md §1.5)",
}

COLUMNS = ["rule", "stage", "paper", "job", "seeds", "network", "input", "work", "unit", "rate", "rate_unit",
           "effective_rate", "source", "device_h_per_job", "device_h", "claimed_gpu_h", "claim", "basis"]


# -- networks ---------------------------------------------------------------------------------------
def canonical(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec without the keys that follow the dataset (head, stem channels, vocabulary)."""
    return {k: v for k, v in spec.items() if k not in IGNORED_SPEC_KEYS}


def data_size(dataset: str) -> DataSize:
    if dataset not in DATA_SIZES:
        raise NasReproError(f"dataset '{dataset}': its size is not known to `nasrepro cost` "
                            f"(known: {', '.join(DATA_SIZES)}); add it to DATA_SIZES in {__name__}")
    return DATA_SIZES[dataset]


@dataclass(frozen=True)
class Network:
    """A network at one dataset's input size: what a rate is measured for."""

    name: str  # the arch file's stem, or what the search trains
    spec_json: str  # the spec as written (canonical JSON: hashable)
    dataset: str

    @classmethod
    def of(cls, name: str, spec: Mapping[str, Any], dataset: str) -> Network:
        return cls(name, json.dumps(dict(spec), sort_keys=True, default=list), dataset)

    @property
    def spec(self) -> dict[str, Any]:
        return json.loads(self.spec_json)

    @property
    def input(self) -> str:
        return data_size(self.dataset).input

    @property
    def unit(self) -> str:
        return data_size(self.dataset).unit

    @property
    def key(self) -> str:
        """What a rate is cached under: family, a digest of the canonical spec, and the input."""
        spec = canonical(self.spec)
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()[:12]
        return f"{spec.get('family', '?')}:{digest}@{self.input}"

    def matches(self, run_spec: Mapping[str, Any], run_input: str) -> bool:
        """A run's recorded (normalised) spec is this network: same input, and every key of this spec
        (those that follow the dataset aside) has the run's value."""
        if run_input != self.input:
            return False
        mine = canonical(self.spec)
        return all(k in run_spec and _same(run_spec[k], v) for k, v in mine.items())


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=list) == json.dumps(b, sort_keys=True, default=list)


def read_spec(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict):
        raise NasReproError(f"{path}: not an architecture spec (a mapping)")
    return spec


# -- work ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """Work through one network: `work` images (tokens), each costing `cost` plain training steps."""

    network: Network
    work: float
    cost: float = 1.0

    @property
    def step_equivalents(self) -> float:
        return self.work * self.cost


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


def _n(x: float) -> str:
    return f"{int(round(x)):,}"


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def train_subset(recipe: Any, size: DataSize) -> int:
    return min(recipe.train_subset, size.train) if recipe.train_subset else size.train


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
        basis = (f"{_epochs(recipe.epochs)} x {_n(n_train)} training {unit} + {recipe.epochs} x {_n(n_eval)} "
                 f"{eval_split} {unit} at 1/3 (forward only)")
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
                        f"{_n(n_test)} test {unit} at 1/3 (forward only)", batch=recipe.batch_size))
    return jobs


def experiment_network(plan: RunPlan, paper: str, experiment: str) -> tuple[Network, str]:
    """The network an experiment trains, and, for a searched one, how its base bounds the shape."""
    rep = plan.replications[paper]
    exp = rep.experiments[experiment]
    path = rep.arch_path(experiment)
    network = Network.of(path.stem, read_spec(path), plan.run_dataset(paper, experiment))
    if exp.search is None:
        return network, ""
    return network, SHAPE_BOUND.get(rep.searches[exp.search].method, "approximate")


def planned_searches(plan: RunPlan, paper: str) -> list[str]:
    """The searches whose shapes the planned experiments need (each run once per seed)."""
    rep = plan.replications[paper]
    needed = {rep.experiments[e].search for e in plan.experiments(paper) if rep.experiments[e].search}
    return [s for s in rep.searches if s in needed]


@dataclass(frozen=True)
class StageWork:
    stage: str
    work: float | None  # images (tokens) through the network; None: not projected
    parts: tuple[Part, ...]
    basis: str
    network: Network


def search_work(rep: Replication, search: str, scale: str, dataset: str, recipe: Any = None) -> list[StageWork]:
    """The work of every stage of one search at one scale (or of `recipe`, a run's recorded one)."""
    from nas_impl.methods import method_info

    entry = rep.searches[search]
    recipe = recipe if recipe is not None else rep.search_recipe(search, scale)
    base_path = rep.search_arch_path(search)
    base = Network.of(base_path.stem, read_spec(base_path), dataset)
    stages = [stage.name for stage in method_info(entry.method).stages]
    model = _SEARCH_WORK.get(entry.method)
    by_stage = model(recipe, base) if model else {}
    out = []
    for stage in stages:
        found = by_stage.get(stage)
        if found is None:
            found = StageWork(stage, None, (), f"stage '{stage}' of {entry.method}: its work is not projected; "
                                                "only a measured run of the same recipe on this device prices it", base)
        out.append(found)
    return out


def _tas(recipe: Any, base: Network) -> dict[str, StageWork]:
    size = data_size(base.dataset)
    w = recipe.weights
    half = train_subset(w, size) // 2
    work = w.epochs * half
    parts = [Part(base, work, TAS_STEP)]
    basis = (f"{_epochs(w.epochs)} x {_n(half)} weight-half images (an architecture batch rides with each); "
             f"a TAS step = {TAS_STEP} plain steps of the base network per weight image (README 'Search steps': "
             f"3.27-3.56 measured on CPU)")
    if recipe.tas.select != "last":
        parts.append(Part(base, w.epochs * half, EVAL_COST))
        basis += f"; select '{recipe.tas.select}': + an evaluation of the architecture half each epoch at 1/3"
    return {"search": StageWork("search", work, tuple(parts), basis, base)}


def _autoslim(recipe: Any, base: Network) -> dict[str, StageWork]:
    size = data_size(base.dataset)
    w, s = recipe.weights, recipe.autoslim
    n = round(train_subset(w, size) * (1 - s.holdout))
    work = w.epochs * n
    cost = AUTOSLIM_SANDWICH * s.supernet_width ** 2
    basis = (f"{_epochs(w.epochs)} x {_n(n)} images (training set less the {s.holdout:g} held out); a sandwich step "
             f"({s.num_sample_training} configurations) = {AUTOSLIM_SANDWICH} plain steps of the full-width "
             f"super-network (README 'Search steps': 2.2-2.85), which is {s.supernet_width:g}x the base's width: "
             f"x {s.supernet_width:g}^2 (MACs grow with width squared) = {cost:.2f} base steps per image")
    return {"supernet": StageWork("supernet", work, (Part(base, work, cost),), basis, base)}


def _proxylessnas(recipe: Any, base: Network) -> dict[str, StageWork]:
    size = data_size(base.dataset)
    w, s = recipe.weights, recipe.proxyless
    n = train_subset(w, size) - s.valid_size
    steps = math.ceil(n / w.batch_size)
    weight = (s.supernet_warmup_epochs + w.epochs) * n
    joint = max(0, w.epochs - s.arch_skip_epochs)
    if s.arch_algo == "gradient":
        batch = s.arch_batch_size or w.batch_size
        updates = joint * (steps // s.arch_every) * s.arch_steps
        arch_images, arch_cost = updates * batch, PROXYLESS_ARCH_STEP
        arch = (f"{joint} epochs x {steps // s.arch_every * s.arch_steps} architecture updates of {batch} images "
                f"at {PROXYLESS_ARCH_STEP} ({s.grad_mode}; README 'Search steps', measured once on CPU)")
    else:
        batch = s.arch_batch_size or w.eval_batch_size
        updates = joint * min(steps, s.rl_updates_per_epoch)
        arch_images, arch_cost = updates * s.rl_samples * batch, EVAL_COST
        arch = (f"{joint} epochs x {min(steps, s.rl_updates_per_epoch)} REINFORCE updates x {s.rl_samples} sampled "
                f"nets x {batch} images at 1/3 (forward only)")
    parts = (Part(base, weight), Part(base, arch_images, arch_cost))
    basis = (f"({s.supernet_warmup_epochs} warm-up + {w.epochs}) epochs x {_n(n)} images (less {_n(s.valid_size)} "
             f"held out) on one sampled path = 1 plain step of the base chain per image (README: 0.99x); + {arch}; "
             "per-epoch held-out evaluations not counted")
    return {"search": StageWork("search", weight + arch_images, parts, basis, base)}


def rnn_node_ops(settings: Any) -> list[str]:
    """AutoShrink's RNN ops draw (nas_impl.methods.autoshrink.method.node_ops, torch-free here)."""
    from nas_impl.methods.autoshrink.recipe import RNN_NODE_OPS

    if settings.ops:
        return list(settings.ops)
    rng = random.Random(settings.ops_seed)
    return [rng.choice(RNN_NODE_OPS) for _ in range(settings.nodes - 1)]


def shrink_candidates(nodes: int, k: int, keep_fraction: float) -> tuple[int, int]:
    """(steps, candidates trained) of a shrink from the complete DAG of `nodes` nodes, one edge a step."""
    edges = nodes * (nodes - 1) // 2
    threshold = round(edges * keep_fraction)
    counts = [min(k, left) for left in range(edges, threshold, -1)]
    return len(counts), sum(counts)


def _autoshrink(recipe: Any, base: Network) -> dict[str, StageWork]:
    w, s = recipe.weights, recipe.shrink
    steps, candidates = shrink_candidates(s.nodes, s.k, s.keep_fraction)
    bound = (f"{steps} steps x min({s.k}, edges left) = {candidates} candidates, an upper bound (one edge a step; "
             "edges made unreachable go too, and candidates stop early)")
    if base.spec.get("family") == "dag-rnn-lm":
        per_line = DATA_SIZES["ptb"].train / PTB_TRAIN_LINES
        train, valid = s.proxy_lines[0] * per_line, s.proxy_lines[1] * per_line
        edges = [[i, j] for j in range(s.nodes) for i in range(j)]
        spec = {**base.spec, "hidden_dim": s.hidden, "nodes": s.nodes, "edges": edges,
                "ops": ["tanh"] + rnn_node_ops(s), "seq_len": s.bptt,
                **{k: 0.0 for k in ("dropout_output", "dropout_hidden", "dropout_x", "dropout_input",
                                    "dropout_embedding")}}
        network = Network.of(f"{base.name}-proxy-h{s.hidden}", spec, base.dataset)
        basis = (f"{bound}; each {_epochs(w.epochs)} x {_n(train)} tokens ({s.proxy_lines[0]:,} PTB lines x "
                 f"{per_line:.1f} tokens a line, the training file's mean) + {_n(valid)} valid tokens at 1/3; "
                 f"network: the base's cell at hidden {s.hidden}, complete DAG, no dropout, the full vocabulary "
                 "(the proxy's is smaller: an upper bound)")
    else:
        classes = data_size(base.dataset).classes
        train, valid = s.per_class_train * classes, s.per_class_valid * classes
        network = base
        basis = (f"{bound}; each {_epochs(w.epochs)} x {_n(train)} proxy images + {_n(valid)} held-out at 1/3; "
                 "network: the complete-DAG search network (later candidates have fewer edges: an upper bound)")
    work = candidates * w.epochs * train
    parts = (Part(network, work), Part(network, candidates * w.epochs * valid, EVAL_COST))
    return {"search": StageWork("search", work + candidates * w.epochs * valid, parts, basis, network)}


def memnas_candidates(settings: Any, base_spec: Mapping[str, Any]) -> tuple[list[int], str]:
    """Networks trained in each round (0..rounds) and how round 1's count follows from the base."""
    blocks = base_spec.get("blocks") or [[]]
    cells = len(blocks[0]) if settings.round0 == 0 else 1  # round 0's nets have one cell a block
    counts = [settings.round0 or 1]
    how = ""
    for r in range(1, settings.rounds + 1):
        if r < settings.controller_from:  # every candidate: 49 grown per pair of block-1 locations + op trims
            c = cells + r - 1
            n = 49 * (1 + c) ** 2 + 2 * c * len(blocks)
            how = how or (f"round {r}: all {n} candidates of a {c}-cell net (49 x {1 + c}^2 grown + "
                          f"{2 * c * len(blocks)} op-trimmed; memnas/candidates.py)")
            counts.append(n)
        else:
            counts.append(settings.k + settings.audit)
    return counts, how


def _memnas(recipe: Any, base: Network) -> dict[str, StageWork]:
    w, s = recipe.weights, recipe.memnas
    size = data_size(base.dataset)
    n = train_subset(w, size)
    train, valid = (n - s.valid_size, s.valid_size) if s.valid_from == "train" else (n, size.test)
    counts, how = memnas_candidates(s, base.spec)
    total = sum(counts)
    work = total * w.epochs * train
    parts = (Part(base, work), Part(base, total * w.epochs * valid, EVAL_COST))
    basis = (f"{total} networks trained ({' + '.join(map(str, counts))} in rounds 0-{s.rounds}: round 0 "
             f"{counts[0]}; {how + '; ' if how else ''}from round {s.controller_from} the top {s.k}"
             f"{f' + {s.audit} audited' if s.audit else ''}) x {_epochs(w.epochs)} x {_n(train)} images + "
             f"{_n(valid)} scored at 1/3; every net costed as the round-0 base (later rounds' nets are larger: a "
             "lower bound); the controller's fits are not counted")
    return {"search": StageWork("search", work + total * w.epochs * valid, parts, basis, base)}


_SEARCH_WORK = {"tas": _tas, "autoslim": _autoslim, "proxylessnas": _proxylessnas, "autoshrink": _autoshrink,
                "memnas": _memnas}


def recipe_key(recipe: Any) -> str:
    data = recipe.to_dict()
    data.pop("sources", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:12]


def search_jobs(plan: RunPlan, paper: str) -> list[Job]:
    from nas_impl.methods import method_info

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
    experiment retraining the search's shape claims; else what the reference says."""
    rows = {(r.table, r.model): r for r in rep.published if r.metric == "search_gpu_h"}
    for exp in rep.experiments.values():
        if exp.search != search:
            continue
        for claim in exp.claims:
            row = rows.get((claim.table, claim.model))
            if row is not None:
                note = re.sub(r"\s+", " ", row.note).strip()
                return Claim(row.value, f"published.csv {row.table}/{row.model}: {row.source}; {note}")
    return Claim(None, SEARCH_COST_NOTES.get(rep.paper, "not stated: no experiment retraining this search claims a "
                                                        "search_gpu_h row of published.csv"))


def plan_jobs(plan: RunPlan) -> list[Job]:
    return [job for paper in plan.replications for job in search_jobs(plan, paper) + training_jobs(plan, paper)]


# -- measured rates -----------------------------------------------------------------------------------
def same_device(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and " ".join(a.split()).lower() == " ".join(b.split()).lower()


@dataclass(frozen=True)
class MeasuredRun:
    """One finished training: its network, device and median rate."""

    spec: dict[str, Any]
    input: str
    device: str
    rate: float
    unit: str
    threads: int | None
    path: str


@dataclass(frozen=True)
class MeasuredStage:
    """One finished search stage: its seconds and the work its recipe implies."""

    paper: str
    search: str
    method: str
    stage: str
    network_key: str
    device: str
    seconds: float
    work: float | None
    recipe_key: str
    path: str


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _column(path: Path, name: str, delimiter: str = ",") -> list[float]:
    """The positive finite numbers of one column of a CSV (TSV) file; [] when there is none."""
    try:
        with path.open(newline="") as f:
            values = [row.get(name) for row in csv.DictReader(f, delimiter=delimiter)]
    except (OSError, csv.Error):
        return []
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and x > 0:
            out.append(x)
    return out


def scale_dirs(results: Path) -> list[Path]:
    return [results / scale for scale in SCALES if (results / scale).is_dir()]


def measured_runs(results: Path) -> list[MeasuredRun]:
    """Every finished training under results/<scale>/ (a metrics.json beside a train_log.csv)."""
    runs = []
    for scale_dir in scale_dirs(results):
        for metrics in sorted(scale_dir.rglob("metrics.json")):
            log = metrics.with_name("train_log.csv")
            data = _read_json(metrics)
            if data is None or not log.is_file():
                continue
            run, spec, record = data.get("run") or {}, data.get("spec"), data.get("record") or {}
            dataset = record.get("dataset")
            if not isinstance(spec, dict) or dataset not in DATA_SIZES or not run.get("device_name"):
                continue
            unit = DATA_SIZES[dataset].unit
            rates = _column(log, f"{unit}_per_s")
            if rates:
                runs.append(MeasuredRun(spec, DATA_SIZES[dataset].input, run["device_name"], statistics.median(rates),
                                        unit, run.get("threads"), str(metrics.parent)))
    return runs


def _benchmark_seconds(path: Path) -> float | None:
    values = _column(path, "s", "\t") if path.is_file() else []  # Snakemake's benchmark: seconds first
    return max(values) if values else None


def _stage_device(folder: Path, summary: str) -> str | None:
    for name in (summary, "search.json"):
        data = _read_json(folder / name)
        if data is None:
            continue
        run = data.get("run") or {}
        if run.get("device_name"):
            return run["device_name"]
        device = data.get("device")
        if isinstance(device, str) and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            return device
    return None


STAGE_LOGS = {"search": "search_log.csv", "supernet": "supernet_log.csv", "slim": "slim_log.csv"}


def measured_stages(results: Path, replications: Mapping[str, Replication]) -> list[MeasuredStage]:
    """Every finished search stage under results/<scale>/ of a search the manifests still have."""
    from nas_impl.methods import method_info

    out = []
    for scale_dir in scale_dirs(results):
        scale = scale_dir.name
        for paper, rep in replications.items():
            for search, entry in rep.searches.items():
                folder = scale_dir / paper / "search" / search
                recipe_file = folder / "recipe.yaml"
                if not recipe_file.is_file() or scale not in entry.scales:
                    continue
                try:
                    recipe = method_info(entry.method).recipe_from_dict(yaml.safe_load(recipe_file.read_text()),
                                                                        str(recipe_file))
                    dataset = rep.search_run_dataset(search, scale)
                    works = {sw.stage: sw for sw in search_work(rep, search, scale, dataset, recipe)}
                except (NasReproError, OSError, yaml.YAMLError):
                    continue
                stages = method_info(entry.method).stages
                for seed_dir in sorted(folder.glob("seed*")):
                    seed = seed_dir.name.removeprefix("seed")
                    for i, stage in enumerate(stages):
                        if not (seed_dir / stage.summary).is_file():
                            continue
                        device = _stage_device(seed_dir, stage.summary)
                        rule = "search" if i == len(stages) - 1 else stage.name
                        bench = scale_dir / "benchmarks" / paper / rule / f"{search}-seed{seed}.tsv"
                        seconds = _benchmark_seconds(bench)
                        logged = sum(_column(seed_dir / STAGE_LOGS.get(stage.name, ""), "epoch_s")) \
                            if stage.name in STAGE_LOGS else 0.0
                        seconds = max(seconds or 0.0, logged) or None
                        if device is None or seconds is None:
                            continue
                        sw = works[stage.name]
                        out.append(MeasuredStage(paper, search, entry.method, stage.name, sw.network.key, device,
                                                 seconds, sw.work, recipe_key(recipe), str(seed_dir)))
    return out


# -- rates --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    value: float | None  # units per second (a plain training step's, or a search's own)
    source: str  # measured, calibrated, unknown
    detail: str


UNKNOWN = Rate(None, "unknown", "no measured run or calibration of this network on this device")


def load_calibration(results: Path) -> dict[str, dict[str, Any]]:
    """device name -> network key -> calibration entry (empty when there is no cache)."""
    data = _read_json(Path(results) / CALIBRATION_FILE)
    if data is None or data.get("format") != CALIBRATION_FORMAT:
        return {}
    return data.get("devices") or {}


@dataclass
class Rates:
    device: str
    runs: list[MeasuredRun] = field(default_factory=list)
    stages: list[MeasuredStage] = field(default_factory=list)
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> key -> entry

    @classmethod
    def from_results(cls, device: str, results: Path, replications: Mapping[str, Replication]) -> Rates:
        results = Path(results)
        return cls(device, measured_runs(results), measured_stages(results, replications), load_calibration(results))

    def calibrated(self) -> dict[str, Any]:
        for name, entries in self.calibration.items():
            if same_device(name, self.device):
                return entries
        return {}

    def plain(self, network: Network) -> Rate:
        """A plain training step's rate of `network` on the device."""
        runs = [r for r in self.runs if same_device(r.device, self.device) and network.matches(r.spec, r.input)]
        if runs:
            value = statistics.median(r.rate for r in runs)
            where = sorted({r.path for r in runs})
            threads = sorted({r.threads for r in runs if r.threads})
            return Rate(value, "measured", f"median of {len(runs)} run(s): {', '.join(where[:2])}"
                                           f"{' ...' if len(where) > 2 else ''}"
                                           f"{f' ({threads[0]} threads)' if len(threads) == 1 else ''}")
        entry = self.calibrated().get(network.key)
        if entry and entry.get("rate"):
            return Rate(float(entry["rate"]), "calibrated",
                        f"{entry.get('steps', '?')} steps at batch {entry.get('batch', '?')}"
                        f"{', bf16' if entry.get('bf16') else ''}, {entry.get('threads', '?')} threads, "
                        f"{entry.get('measured_at', '')[:10]}")
        return UNKNOWN

    def stage(self, job: Job) -> Rate | None:
        """A search stage's own measured rate (work per second; or jobs per second for a stage whose
        work is not projected, from a run of the same recipe), or None."""
        found = [m for m in self.stages if m.method == job.method and m.stage == job.stage
                 and m.network_key == job.network.key and same_device(m.device, self.device)]
        if job.work is None:
            found = [m for m in found if m.recipe_key == job.recipe_key]
            if found:
                seconds = statistics.median(m.seconds for m in found)
                return Rate(1 / seconds, "measured", f"{len(found)} run(s) of this recipe: {found[0].path}")
            return None
        found = [m for m in found if m.work]
        if not found:
            return None
        value = statistics.median(m.work / m.seconds for m in found)
        return Rate(value, "measured", f"search stage: median of {len(found)} run(s): {found[0].path}")


# -- pricing ------------------------------------------------------------------------------------------
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


# The workflow's other rules: bookkeeping on the host (measure_latency: seconds on the device), not priced as work.
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


def host_seconds(results: Path) -> dict[str, tuple[float, int]]:
    """rule -> (median seconds of a job, benchmark files) over results/<scale>/benchmarks/ of every scale."""
    seen: dict[str, list[float]] = {}
    for scale_dir in scale_dirs(Path(results)):
        bench = scale_dir / "benchmarks"
        for rule in HOST_RULES:
            for path in bench.rglob(f"{rule}/*.tsv"):
                seconds = _benchmark_seconds(path)
                if seconds is not None:
                    seen.setdefault(rule, []).append(seconds)
    return {rule: (statistics.median(v), len(v)) for rule, v in seen.items()}


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


# -- output -------------------------------------------------------------------------------------------
def _fmt_count(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= limit:
            return f"{x / limit:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def _fmt_h(h: float | None) -> str:
    if h is None:
        return "unknown"
    return f"{h:,.1f}" if h >= 10 else f"{h:.3g}"


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


def render(projection: Projection) -> str:
    """The projection as a text table, its totals, the claimed search costs and the notes."""
    notes: dict[str, int] = {}
    header = ["rule", "paper", "job", "seeds", "work/job", "rate", "source", "device-h", "note"]
    body = []
    for r in projection.rows:
        j = r.job
        note = notes.setdefault(j.basis, len(notes) + 1)
        rule = j.rule if j.stage in ("", j.rule) else f"{j.rule}:{j.stage}"
        unit = {"images": " img", "tokens": " tok"}.get(j.network.unit, "")
        work = "-" if j.work is None else _fmt_count(j.work, unit)
        rate = "-" if r.rate.value is None else (
            f"{_fmt_count(r.rate.value, unit)}/s" if j.work is not None else f"{1 / r.rate.value:.3g} s/job")
        if r.rate.source == "unknown":
            rate = "-"
        body.append([rule, j.paper, j.name, str(j.seeds), work, rate, r.rate.source, _fmt_h(r.device_h), f"[{note}]"])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    right = {3, 4, 5, 7}
    out = io.StringIO()
    out.write(f"Projected device-hours, scale {projection.scale}, device '{projection.device}' "
              f"(work / rate; an unknown rate adds nothing to the totals)\n\n")

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    out.write(line(header) + "\n" + line(["-" * w for w in widths]) + "\n")
    for row in body:
        out.write(line(row) + "\n")
    out.write("\nPer paper (1 device):\n")
    for paper, t in projection.paper_totals().items():
        parts = ", ".join(f"{rule} {_fmt_h(h)}" for rule, h in sorted(t["by_rule"].items()))
        unknown = f"; {t['unknown_jobs']} job(s) of unknown rate not counted" if t["unknown_jobs"] else ""
        out.write(f"  {paper:<14} {_fmt_h(t['device_h']):>10} device-h ({parts or 'nothing known'}){unknown}\n")
    by_rule = ", ".join(f"{rule} {_fmt_h(h)}" for rule, h in sorted(projection.rule_totals().items()))
    out.write(f"\nPer rule (all papers, 1 device): {by_rule or 'nothing known'}\n")
    total = projection.total_h
    unknown = f" ({projection.unknown_jobs} job(s) of unknown rate not counted)" if projection.unknown_jobs else ""
    out.write(f"\nTotal: {_fmt_h(total)} device-h on 1 device{unknown}\n")
    out.write(f"       {_fmt_h(total / projection.gpus)} h on {projection.gpus} device(s), ideal scaling (total / "
              f"{projection.gpus}: no job waits; {projection.gpus_from})\n")
    out.write(f"       no fewer than {_fmt_h(projection.critical_path_h())} h whatever the devices (the longest chain "
              "of one seed: search -> KD teacher -> training -> evaluation)\n")
    if projection.others:
        out.write("\nOther rules (host bookkeeping, not device work; median seconds a job from earlier "
                  "benchmarks):\n  ")
        out.write(", ".join(f"{rule} {n}" + (f" x {s:.2g} s" if s is not None else " x ? s")
                            for rule, (n, s, _) in projection.others.items()) + "\n")
    out.write("\nClaimed search cost beside the projection (one search, one seed):\n")
    searches = search_hours(projection)
    if not searches:
        out.write("  (no search at this scale)\n")
    for paper in dict.fromkeys(paper for paper, _ in searches):
        mine = [(name, found) for (p, name), found in searches.items() if p == paper]
        unclaimed = [(name, found) for name, found in mine if found[2].value is None]
        for name, (hours, missing, claim) in mine:
            if claim.value is not None:
                out.write(f"  {paper}/{name}: claimed {claim.value:g} GPU-h; projected {_projected(hours, missing)} "
                          f"on '{projection.device}'\n      claim: {claim.text}\n")
        texts = list(dict.fromkeys(found[2].text for _, found in unclaimed))
        for text in texts:
            names = [(name, found) for name, found in unclaimed if found[2].text == text]
            listing = "; ".join(f"{name} {_projected(h, m)}" for name, (h, m, _) in names)
            out.write(f"  {paper}: {text}\n      projected on '{projection.device}': {listing}\n")
    out.write("\nNotes (the basis of each row's work):\n")
    for text, number in notes.items():
        out.write(f"  [{number}] {text}\n")
    return out.getvalue()


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


def _projected(hours: float, missing: list[str]) -> str:
    if not missing:
        return f"{_fmt_h(hours)} device-h"
    unknown = f"unknown ({', '.join(missing)})"
    return unknown if not hours else f"{_fmt_h(hours)} device-h + {unknown}"


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
