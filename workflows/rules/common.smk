# Configuration, replication manifests and the helper functions the rules use.
import dataclasses
import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

from nas_impl import plan  # pure Python: the config checks below run before torch is imported


# The repository (replication manifests, default config); results go to the working directory.
REPO = Path(workflow.basedir)
# Every rule: the `nasrepro` of the environment Snakemake runs in (activated or not), and a glibc
# allocator that keeps activation buffers mapped (otherwise CPU steps can take twice as long).
shell.prefix(
    f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH "
    "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824; "
)


configfile: REPO / "workflows/config.yaml"


def config_error(err):
    """A config mistake ends the parse with its one line (a raised exception would print a traceback)."""
    print(f"nas-repro: {err}", file=sys.stderr)
    sys.exit(1)


IMPLEMENTED = plan.discover_replications(REPO / "replications")
# Per scale: intra-op threads of each training, search and evaluation job (config `threads` overrides),
# and the resources a scheduler needs to place it.
TRAIN_THREADS = {"smoke": 1, "reduced": 8, "paper": 8}
TRAIN_RESOURCES = {
    "smoke": {"gpu": 0, "mem_mb": 4000, "runtime": 30},
    "reduced": {"gpu": 1, "mem_mb": 32000, "runtime": 12 * 60},
    "paper": {"gpu": 1, "mem_mb": 64000, "runtime": 7 * 24 * 60},
}

try:  # what needs no replication manifest first (quick: before torch is imported)
    plan.check_schema(config, yaml.safe_load((REPO / "workflows/schemas/config.schema.yaml").read_text()))
    PAPERS = plan.check_papers(config["papers"], IMPLEMENTED)
except plan.ConfigError as err:
    config_error(err)
validate(config, schema="../schemas/config.schema.yaml")  # already checked above: a no-op backstop
SCALE = config["scale"]

from nas_impl.methods import method_keys, not_applied_keys
from nas_impl.replication import load_replication
from nas_impl.run_plan import RunPlan
from nas_impl.training.recipe import Recipe

REPLICATIONS = {paper: load_replication(REPO / "replications" / paper) for paper in PAPERS}
TRAINING_KEYS = {f.name for f in dataclasses.fields(Recipe)} - {"sources"}
METHODS = sorted({s.method for rep in REPLICATIONS.values() for s in rep.searches.values()})
# Each search method's own recipe keys (beyond the training recipe's): recipe_overrides may set them.
METHOD_KEYS = {m: method_keys(m) for m in METHODS}
try:
    plan.check_experiments(
        config["experiments"],
        {p: {name: e.scales for name, e in rep.experiments.items()} for p, rep in REPLICATIONS.items()},
        SCALE,
    )
    plan.check_recipe_overrides(config["recipe_overrides"], TRAINING_KEYS, METHOD_KEYS)
except plan.ConfigError as err:
    config_error(err)

# Results do not depend on --cores: every job that trains, searches or evaluates pins this many
# intra-op threads (`threads:` stays the scheduling hint, which Snakemake lowers to --cores).
THREADS = plan.job_threads(config["threads"], SCALE, TRAIN_THREADS)
# What this run does (experiments, seeds, datasets, files): nas_impl/run_plan.py, unit-tested.
PLAN = RunPlan.from_config(REPLICATIONS, config)
RESULTS = PLAN.results
# The one software environment of every rule (for `--sdm conda`; paths are relative to rules/).
CONDA_ENV = "../../environment.yml"


wildcard_constraints:
    scale="smoke|reduced|paper",
    paper="[a-z0-9_-]+",
    experiment="[A-Za-z0-9_.-]+",
    seed=r"\d+",
    table="[A-Za-z0-9_.-]+",
    dataset="[A-Za-z0-9_.:-]+",
    recipe="[A-Za-z0-9_.-]+",
    search="[A-Za-z0-9_.-]+",


def replication_dir(wildcards):
    return str(REPLICATIONS[wildcards.paper].root)


def run_dataset(wildcards):
    return PLAN.run_dataset(wildcards.paper, wildcards.experiment)


def search_dataset(wildcards):
    return PLAN.search_dataset(wildcards.paper, wildcards.search)


def run_dir(wildcards):
    return PLAN.run_dir(wildcards.paper, wildcards.experiment, wildcards.seed)


def data_stamp(wildcards):
    return f"{RESULTS}/data/{run_dataset(wildcards)}.json"


def search_data_stamp(wildcards):
    return f"{RESULTS}/data/{search_dataset(wildcards)}.json"


def search_dir(wildcards):
    return PLAN.search_dir(wildcards.paper, wildcards.search, wildcards.seed)


def search_base_arch(wildcards):
    """The unpruned network a search runs over (archs/<arch>.yaml)."""
    return str(REPLICATIONS[wildcards.paper].search_arch_path(wildcards.search))


def search_method(wildcards):
    return REPLICATIONS[wildcards.paper].searches[wildcards.search].method


def experiment_recipe(wildcards):
    name = REPLICATIONS[wildcards.paper].experiments[wildcards.experiment].recipe
    return f"{RESULTS}/{wildcards.paper}/recipes/{name}.yaml"


def recipe_overrides(wildcards):
    """`--set` flags of a training recipe: the training keys of config `recipe_overrides`."""
    return plan.set_args(plan.overrides_for(config["recipe_overrides"], TRAINING_KEYS))


def search_recipe_overrides(wildcards):
    """`--set` flags of a search recipe: the training keys its search applies (a `grad_clip` meant for
    retraining stays out of it) and the keys of the search's own method."""
    method = search_method(wildcards)
    keys = (TRAINING_KEYS - not_applied_keys(method)) | METHOD_KEYS[method]
    return plan.set_args(plan.overrides_for(config["recipe_overrides"], keys))


def searched_arch_source(wildcards):
    return PLAN.searched_arch_source(wildcards.paper, wildcards.experiment, wildcards.seed)


# The experiments whose arch.yaml a search derives (rule searched_arch); a pattern that matches
# nothing when none is planned.
SEARCHED_EXPERIMENTS = "|".join(re.escape(name) for name in PLAN.searched_experiments()) or "(?!)"


def teacher_dir(wildcards):
    return PLAN.teacher_dir(wildcards.paper, wildcards.experiment, wildcards.seed)


def teacher_metrics(wildcards):
    """The teacher's metrics.json: written only when its training finished (checkpoint.pt is then final)."""
    folder = teacher_dir(wildcards)
    return [] if folder is None else f"{folder}/metrics.json"


def teacher_flag(wildcards):
    folder = teacher_dir(wildcards)
    return "" if folder is None else f"--teacher {folder}/checkpoint.pt"


def run_checkpoint(wildcards):
    return f"{run_dir(wildcards)}/checkpoint.pt"


def resume_guard(out, state, key_files, settings, ignore=()):
    """The shell command run before a resumable job: it removes OUT/<state> (a name or several) unless the job that wrote it
    had the same input files and settings (see nas_impl/plan.py), so a rerun after a kill resumes,
    and a rerun because something changed starts afresh."""
    settings = " ".join(f"{k}={v}" for k, v in settings.items())
    states = [state] if isinstance(state, str) else list(state)
    args = ["python", "-m", "nas_impl.plan", "resume-guard", "--dir", out]
    args += [a for name in states for a in ("--state", name)] + ["--key", settings]
    args += [a for path in key_files for a in ("--key-file", str(path))]
    args += [a for key in ignore for a in ("--ignore", key)]
    return " ".join(shlex.quote(a) for a in args)


def train_guard(wildcards, input):
    settings = {"dataset": run_dataset(wildcards), "data_root": config["data_root"], "device": config["device"],
                "threads": THREADS, "seed": wildcards.seed}
    return resume_guard(run_dir(wildcards), "checkpoint.pt",
                        [input.arch, input.recipe, *([input.teacher] if input.teacher else [])], settings)


def stage_guard(wildcards, input, stage):
    """The resume guard of a search stage that checkpoints (a no-op for one that does not); the
    recipe keys the stage ignores may change without discarding its checkpoint."""
    if not stage.state_files:
        return "true"
    settings = {"method": search_method(wildcards), "dataset": search_dataset(wildcards),
                "data_root": config["data_root"], "device": config["device"], "threads": THREADS,
                "seed": wildcards.seed}
    # The summary of the stage before (ProxylessNAS's latency.json: its lookup table) is a key too: a
    # rerun of that stage means this one's checkpoint was made with other inputs.
    return resume_guard(search_dir(wildcards), stage.state_files, [input.base, input.recipe, *input.previous],
                        settings, stage.ignores)


def final_stage(wildcards):
    return PLAN.final_stage(wildcards.paper, wildcards.search)


def earlier_stage(wildcards):
    return PLAN.earlier_stage(wildcards.paper, wildcards.search, wildcards.stage)


def stage_inputs(stage_of):
    """The input function of a stage's rule: the summary of the stage before it, if any."""
    return lambda wildcards: PLAN.stage_inputs(wildcards.paper, wildcards.search, wildcards.seed,
                                               stage_of(wildcards).name)


# The earlier stages of the planned searches' methods (AutoSlim: supernet); a pattern that
# matches nothing when none is planned.
EARLIER_STAGES = "|".join(re.escape(name) for name in PLAN.earlier_stage_names()) or "(?!)"


def compare_inputs(wildcards):
    return PLAN.compare_inputs(wildcards.paper)


def latency_target_inputs(wildcards):
    return PLAN.latency_target_inputs(wildcards.paper)


def train_threads(wildcards):
    return THREADS


def experiment_resource(key):
    """A training or evaluation job's `key` (gpu, mem_mb, runtime): the scale's default, or what the
    manifest sets for the experiment at this scale (`resources`)."""
    return lambda wildcards: PLAN.experiment_resources(wildcards.paper, wildcards.experiment, TRAIN_RESOURCES[SCALE])[key]


def train_launcher(wildcards, resources):
    """`nasrepro`, or with several GPUs a torchrun of it: one process a GPU, data-parallel
    (nas_impl/training/distributed.py: every step sees the recipe's global batch)."""
    gpus = int(resources.gpu)
    return f"torchrun --standalone --nproc_per_node {gpus} -m nas_impl.cli" if gpus > 1 else "nasrepro"


def search_resource(key):
    """A search job's `key`: the scale's default, or the manifest's `resources` of the search."""
    return lambda wildcards: PLAN.search_resources(wildcards.paper, wildcards.search, TRAIN_RESOURCES[SCALE])[key]
