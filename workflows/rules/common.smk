# Configuration, replication manifests and the helper functions the rules use.
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from nas_impl.data import DATASET_INFO
from nas_impl.replication import load_replication


# The repository (replication manifests, default config); results go to the working directory.
REPO = Path(workflow.basedir)
# Every rule: the `nasrepro` of the environment Snakemake runs in (activated or not), and a glibc
# allocator that keeps activation buffers mapped (otherwise CPU steps can take twice as long).
shell.prefix(
    f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH "
    "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824; "
)


configfile: REPO / "workflows/config.yaml"


validate(config, schema="../schemas/config.schema.yaml")

IMPLEMENTED = ["baselines", "tas", "autoslim"]
SCALE = config["scale"]
PAPERS = config["papers"] or IMPLEMENTED
unknown = sorted(set(PAPERS) - set(IMPLEMENTED))
if unknown:
    raise ValueError(f"config 'papers': {unknown} not implemented; implemented: {IMPLEMENTED}")
REPLICATIONS = {paper: load_replication(REPO / "replications" / paper) for paper in PAPERS}
RESULTS = f"results/{SCALE}"
# The one software environment of every rule (for `--sdm conda`; paths are relative to rules/).
CONDA_ENV = "../../environment.yml"

# Per scale: threads per training job, and the resources a scheduler needs to place it.
TRAIN_THREADS = {"smoke": 1, "reduced": 8, "paper": 8}
TRAIN_RESOURCES = {
    "smoke": {"gpu": 0, "mem_mb": 4000, "runtime": 30},
    "reduced": {"gpu": 1, "mem_mb": 32000, "runtime": 12 * 60},
    "paper": {"gpu": 1, "mem_mb": 64000, "runtime": 7 * 24 * 60},
}


wildcard_constraints:
    scale="smoke|reduced|paper",
    paper="[a-z0-9_-]+",
    experiment="[A-Za-z0-9_.-]+",
    seed=r"\d+",
    table="[A-Za-z0-9_.-]+",
    dataset="[A-Za-z0-9_.:-]+",
    recipe="[A-Za-z0-9_.-]+",
    search="[A-Za-z0-9_.-]+",


def experiments(paper):
    """The experiments run at this scale (config `experiments` narrows them), with the teachers and
    baselines they need."""
    rep = REPLICATIONS[paper]
    chosen = rep.experiments_at(SCALE)
    if config["experiments"]:
        chosen = [e for e in chosen if e in config["experiments"]]
    needed = {other for e in chosen for other in (rep.experiments[e].teacher, rep.experiments[e].baseline) if other}
    return [e for e in rep.experiments if e in set(chosen) | needed]


def trained(paper, experiment):
    return REPLICATIONS[paper].experiments[experiment].trained_at(SCALE)


def seeds(paper):
    return config["seeds"] or REPLICATIONS[paper].seeds[SCALE]


def replication_dir(wildcards):
    return str(REPLICATIONS[wildcards.paper].root)


def substitute(dataset):
    return config["dataset_substitutes"].get(dataset, dataset)


def run_dataset(wildcards):
    """The dataset an experiment trains on at this scale (after substitutes)."""
    return substitute(REPLICATIONS[wildcards.paper].run_dataset(wildcards.experiment, SCALE))


def search_dataset(wildcards):
    return substitute(REPLICATIONS[wildcards.paper].search_run_dataset(wildcards.search, SCALE))


def run_dir(wildcards):
    return f"{RESULTS}/{wildcards.paper}/{wildcards.experiment}/seed{wildcards.seed}"


def data_stamp(wildcards):
    return f"{RESULTS}/data/{run_dataset(wildcards)}.json"


def search_data_stamp(wildcards):
    return f"{RESULTS}/data/{search_dataset(wildcards)}.json"


def search_path(paper, search, seed):
    return f"{RESULTS}/{paper}/search/{search}/seed{seed}"


def search_dir(wildcards):
    return search_path(wildcards.paper, wildcards.search, wildcards.seed)


def search_base_arch(wildcards):
    """The unpruned network a search runs over (archs/<arch>.yaml)."""
    return str(REPLICATIONS[wildcards.paper].search_arch_path(wildcards.search))


def search_method(wildcards):
    return REPLICATIONS[wildcards.paper].searches[wildcards.search].method


def experiment_recipe(wildcards):
    name = REPLICATIONS[wildcards.paper].experiments[wildcards.experiment].recipe
    return f"{RESULTS}/{wildcards.paper}/recipes/{name}.yaml"


def recipe_overrides(wildcards):
    def text(value):  # --config parses values already: pass strings through, dump the rest
        return value if isinstance(value, str) else json.dumps(value)

    return " ".join(f"--set {shlex.quote(f'{k}={text(v)}')}" for k, v in config["recipe_overrides"].items())


def experiment_arch_source(wildcards):
    """archs/<arch>.yaml, or for a searched experiment the shape its search derived (same seed):
    its arch.yaml, or the search.json that holds one shape per target (AutoSlim)."""
    rep = REPLICATIONS[wildcards.paper]
    experiment = rep.experiments[wildcards.experiment]
    if experiment.search is None:
        return str(rep.arch_path(wildcards.experiment))
    searched = "arch.yaml" if experiment.search_target is None else "search.json"
    return f"{search_path(wildcards.paper, experiment.search, wildcards.seed)}/{searched}"


def searched_flag(wildcards, input):
    searched = REPLICATIONS[wildcards.paper].experiments[wildcards.experiment].search is not None
    return f"--searched {input.spec}" if searched else ""


def teacher_checkpoint(wildcards):
    """The KD teacher's checkpoint (the teacher experiment, same seed), if the experiment has one."""
    teacher = REPLICATIONS[wildcards.paper].experiments[wildcards.experiment].teacher
    if teacher is None:
        return []
    return f"{RESULTS}/{wildcards.paper}/{teacher}/seed{wildcards.seed}/checkpoint.pt"


def teacher_flag(wildcards, input):
    return f"--teacher {input.teacher}" if input.teacher else ""


def paper_dataset(wildcards):
    return REPLICATIONS[wildcards.paper].experiments[wildcards.experiment].dataset


def run_files(paper, name):
    """`name` of every run; eval.json only of the experiments trained at this scale."""
    chosen = [e for e in experiments(paper) if name != "eval.json" or trained(paper, e)]
    return [f"{RESULTS}/{paper}/{e}/seed{s}/{name}" for e in chosen for s in seeds(paper)]


def compare_inputs(wildcards):
    return run_files(wildcards.paper, "eval.json") + run_files(wildcards.paper, "arch_metrics.json")


def tables(paper):
    return [f"{RESULTS}/{paper}/tables/{t}.csv" for t in REPLICATIONS[paper].tables]


def plots(paper):
    return [f"{RESULTS}/{paper}/plots/{t}.png" for t in REPLICATIONS[paper].tables]


def train_threads(wildcards):
    return TRAIN_THREADS[SCALE]


def train_resource(key):
    return TRAIN_RESOURCES[SCALE][key]
