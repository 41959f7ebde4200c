"""Config mistakes fail at parse time with one line naming the key (no traceback), accepted configs
plan jobs, and a job's intra-op thread count does not depend on --cores.

Every case is one `snakemake -n` in a temporary folder; they run four at a time (each spends most
of its time starting up), and the tests read their results."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
BASELINE = ["papers=[baselines]", "experiments=[resnet20-cifar10]"]
TAS = ["papers=[tas]", "experiments=[searched-C010-ResNet20-kd]"]  # a teacher, a search, a KD student

# name -> (--config entries, the key the error must name, a phrase of the fix)
ERRORS = {
    "seeds-not-integer": (["seeds=[x]"], "seeds", "e.g. --config seeds='[0, 1]'"),
    "experiment-unknown": (["experiments=[resnet20-cifar1O]"], "experiments",
                           "is not an experiment of the selected papers (autoshrink, autoslim, baselines, memnas, proxylessnas, tas) "
                           "(did you mean 'resnet20-cifar10'"),
    "experiment-other-scale": (["papers=[baselines]", "experiments=[resnet20-cifar100]"], "experiments",
                               "does not run at scale smoke (only at paper)"),
    "override-typo": (["recipe_overrides={epoch: 1}", *BASELINE], "recipe_overrides",
                      "unknown recipe key 'epoch' (did you mean 'epochs'?)"),
    "paper-unknown": (["papers=[nope]"], "papers", "implemented: autoshrink, autoslim, baselines, memnas, proxylessnas, tas"),
    "scale-unknown": (["scale=huge"], "scale", "'huge' is not one of ['smoke', 'reduced', 'paper']"),
    "key-unknown": (["scal=smoke"], "scal", "did you mean 'scale'"),
    "threads-zero": (["threads=0"], "threads", "less than the minimum of 1"),
}
# Accepted: integer strings of --config's lists, null threads, a search key (reaches search recipes only),
# a training key no search applies (reaches training recipes only).
ACCEPTED = ["seeds=[1]", "threads=null", "recipe_overrides={target_ratio: 0.5, epochs: 1, grad_clip: 5.0}", *TAS]


def dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "-n",
                           *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("config")
    jobs = {name: (root / name, "--config", *config) for name, (config, _, _) in ERRORS.items()}
    jobs["accepted"] = (root / "accepted", "-p", "--config", *ACCEPTED)
    for cores in (1, 2):  # reduced scale: 8 intra-op threads per job, more than either
        jobs[f"cores{cores}"] = (root / f"cores{cores}", "-p", "--cores", str(cores), "--config", "scale=reduced", *TAS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(dry_run, *args) for name, args in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_config_mistake_is_one_line_naming_the_key(results, case):
    _, key, fix = ERRORS[case]
    result = results[case]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Traceback" not in output and "File \"" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("nas-repro: ")]
    assert len(errors) == 1, output
    assert f"'{key}" in errors[0] and fix in errors[0], errors[0]


def commands(output: str, verb: str) -> list[str]:
    return [line for line in output.splitlines() if f"nasrepro {verb} " in line]


def test_accepted_config_plans_its_jobs(results):
    result = results["accepted"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    trains = commands(result.stdout, "train")
    assert len(trains) == 2 and all("--seed 1 " in c and "--threads 1 " in c for c in trains), trains
    recipes = commands(result.stdout, "recipe")
    assert recipes and all("--set epochs=1" in c for c in recipes)
    assert all(("--set target_ratio=0.5" in c) == ("--search" in c) for c in recipes), recipes  # search keys: search recipes only
    assert all(("--set grad_clip=5.0" in c) != ("--search" in c) for c in recipes), recipes  # searches do not clip


def test_job_threads_do_not_depend_on_cores(results):
    lines = {}
    for cores in (1, 2):
        result = results[f"cores{cores}"]
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        lines[cores] = sorted(c for verb in ("train", "search", "evaluate") for c in commands(result.stdout, verb))
        assert {verb for verb in ("train", "search", "evaluate") if commands(result.stdout, verb)} == \
            {"train", "search", "evaluate"}
        for c in lines[cores]:
            assert "OMP_NUM_THREADS=8 nasrepro" in c and "--threads 8 " in c, c
    assert lines[1] == lines[2]  # the same jobs with the same command lines
