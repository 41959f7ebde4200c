"""The Snakemake workflow: lint, dry-runs of every scale with both profiles, and a tiny
end-to-end smoke run in a temporary working directory (tables, plots, report, no-op rerun,
regression check)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nas_impl.methods import method_info
from nas_impl.plan import discover_replications
from nas_impl.replication import load_replication

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CHAIN = ["prepare_data", "recipe", "train", "evaluate", "compare", "plot", "report"]
PAPERS = discover_replications(REPO / "replications")


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_lint_is_clean():
    result = snakemake("--lint", check=False)
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr, result.stdout


# Every method's stages run through two generic rules: `search_stage` (earlier stages), `search` (the last).
SEARCH_RULES_ALL = ["search_stage", "search"]


def expected_jobs(scale: str, papers: list[str] = PAPERS) -> dict[str, int]:
    """Job counts of one scale, from the manifests: one job per paper and seed writes the reference
    architectures (and their metrics), one per searched run its shape; only the experiments trained
    at the scale are trained, and each searched shape is searched once."""
    counts = dict.fromkeys(["reference_archs", "searched_arch", "train", "recipe", "search_recipe", "compare",
                            *SEARCH_RULES_ALL], 0)
    for paper in papers:
        rep = load_replication(REPO / "replications" / paper)
        n_seeds = len(rep.seeds[scale])
        names = rep.experiments_at(scale)
        trained = [rep.experiments[e] for e in names if rep.experiments[e].trained_at(scale)]
        searches = {rep.experiments[e].search for e in names} - {None}
        searched = [e for e in names if rep.experiments[e].search]
        counts["reference_archs"] += n_seeds if len(names) > len(searched) else 0
        counts["searched_arch"] += len(searched) * n_seeds
        counts["train"] += len(trained) * n_seeds
        counts["recipe"] += len({e.recipe for e in trained})
        for search in searches:
            stages = method_info(rep.searches[search].method).stages
            counts["search"] += n_seeds
            counts["search_stage"] += (len(stages) - 1) * n_seeds
        counts["search_recipe"] += len(searches)
        counts["compare"] += len(rep.tables)
    return counts


@pytest.mark.parametrize("profile", ["default", "slurm"])
@pytest.mark.parametrize("scale", ["smoke", "reduced", "paper"])
def test_dry_run_contains_every_rule_of_the_chain(tmp_path, scale, profile):
    result = snakemake("-n", "--profile", str(REPO / "workflows/profiles" / profile), "--directory", str(tmp_path),
                       "--config", f"scale={scale}")
    counts = job_counts(result.stdout)
    expected = expected_jobs(scale)
    assert sum(n for rule, n in counts.items() if rule.startswith("reference_archs_")) == expected["reference_archs"]
    assert counts.get("searched_arch", 0) == expected["searched_arch"]
    assert counts["train"] == counts["evaluate"] == expected["train"]
    assert counts["compare"] == counts["plot"] == expected["compare"]
    for rule in ("recipe", "search_recipe", *SEARCH_RULES_ALL):
        assert counts.get(rule, 0) == expected[rule], (rule, counts)
    assert counts["report"] == 1
    assert counts["latency_targets"] == 1  # every scale has a ProxylessNAS search aiming at a latency
    assert set(CHAIN) <= set(counts) and counts["search"] >= 1


def test_paper_scale_runs_three_seeds_of_every_table(tmp_path):
    result = snakemake("-n", "--config", "scale=paper", "--directory", str(tmp_path))
    counts = job_counts(result.stdout)
    # baselines: 14 networks; TAS: per depth (5) and CIFAR dataset (2) the teacher, the released
    # shape, the searched shape with and without KD, and the two ImageNet teachers and shapes; 3 seeds.
    # AutoSlim (one seed): 3 CIFAR networks at default width and 7 slimmed shapes (ResNet-56 and WRN-40-4
    # at 0.5x and 0.3x, MobileNetV2 also at 88M); 4 ImageNet networks at default width, the 13 released
    # configurations and the 13 shapes searched at the released targets. ProxylessNAS (one seed): the 4
    # released ImageNet nets, proxyless_cifar and 5 searched nets (CIFAR, mobile G and R, GPU, CPU).
    # AutoShrink (one seed): ShrinkCNN-A/B on ImageNet, ShrinkRNN, the LSTM baseline, the searched CIFAR cell
    # and the searched RNN cell. MemNAS (one seed): the 9 nets of its tables the suite builds, round 0's net53
    # and the nets of its two searches (lambda 0.8, 0.5).
    assert counts["train"] == (14 + 5 * 2 * 4 + 2 * 2) * 3 + (3 + 7 + 4 + 13 + 13) + (4 + 1 + 5) + 6 + 12
    # TAS: one stage; AutoSlim: supernet (search_stage), then slim; ProxylessNAS: latency, then search;
    # AutoShrink: one stage, a CNN and an RNN search; MemNAS: one stage, two searches
    assert counts["search"] == 5 * 2 * 3 + 3 + 4 + 5 + 2 + 2
    assert counts["search_stage"] == 3 + 4 + 5
    assert counts["prepare_data"] == 4  # cifar10, cifar100, imagenet, ptb
    # timed where the run is: the three nets of Table 3's order and the five latency-searched nets
    assert counts["measure_latency"] == 3 + 5


TINY = ["scale=smoke", "papers=[baselines]", "experiments=[resnet20-cifar10]",
        "recipe_overrides={epochs: 1, train_subset: 256, test_subset: 200, batch_size: 64}"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake("--cores", "2", "--directory", str(workdir), "--config", *TINY)
    return workdir


def test_end_to_end_smoke_produces_tables_plots_and_report(smoke_run):
    scale_dir = smoke_run / "results/smoke"
    run = scale_dir / "baselines/resnet20-cifar10/seed0"
    for name in ("arch.yaml", "checkpoint.pt", "train_log.csv", "metrics.json", "eval.json", "arch_metrics.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "eval.json").read_text())["dataset"] == "fashion-mnist"
    table = pd.read_csv(scale_dir / "baselines/tables/cifar10-resnets.csv")
    r20 = table[table.model == "ResNet-20"].set_index("metric")
    assert r20.loc["macs", "verdict"] == "reproduced" and r20.loc["params", "verdict"] == "reproduced"
    assert r20.loc["top1_err", "verdict"] == "not comparable at this scale"
    assert set(table[table.model != "ResNet-20"].verdict) == {"not run"}
    for plot in ("cifar10-resnets", "cifar100-resnets", "imagenet-resnets", "imagenet-mobilenetv2"):
        assert (scale_dir / f"baselines/plots/{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scorecard = pd.read_csv(scale_dir / "scorecard.csv")
    assert len(scorecard) == 31 and (scorecard.verdict == "reproduced").sum() == 2
    html = (scale_dir / "report.html").read_text()
    # the summary shows the plot of the one table that ran and names the three that did not
    assert "ResNet-20" in html and html.count("data:image/png;base64,") == 1
    assert "not plotted here: cifar100-resnets, imagenet-mobilenetv2, imagenet-resnets" in html
    assert list((scale_dir / "benchmarks/baselines/train").glob("*.tsv")) and (scale_dir / "logs").is_dir()


def test_rerun_with_nothing_changed_does_no_work(smoke_run):
    result = snakemake("-n", "--directory", str(smoke_run), "--config", *TINY)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_regress_rule_against_a_reference(smoke_run):
    reference = smoke_run / "results/reference/smoke/baselines/tables"
    shutil.copytree(smoke_run / "results/smoke/baselines/tables", reference)
    snakemake("regress", "--cores", "1", "--directory", str(smoke_run), "--config", *TINY)
    assert json.loads((smoke_run / "results/smoke/regress.json").read_text())["differences"] == 0
    (smoke_run / "results/smoke/regress.json").unlink()
    table = pd.read_csv(reference / "cifar10-resnets.csv")
    table.loc[(table.model == "ResNet-20") & (table.metric == "macs"), "reproduced_mean"] = 30.0
    table.to_csv(reference / "cifar10-resnets.csv", index=False)
    result = snakemake("regress", "--cores", "1", "--directory", str(smoke_run), "--config", *TINY, check=False)
    assert result.returncode != 0
    assert "ResNet-20 macs: 30 -> 40.8132" in result.stdout + result.stderr
    assert not (smoke_run / "results/smoke/regress.json").exists()


TAS_TINY = ["scale=smoke", "papers=[tas]",
            "experiments=[searched-C010-ResNet20-kd,searched-C010-ResNet20-nokd,C010-ResNet20,C100-ResNet56]",
            "recipe_overrides={epochs: 1, train_subset: 256, test_subset: 200, batch_size: 64}"]


def test_tas_chain_end_to_end(tmp_path):
    """Teacher -> search -> KD and plain retraining -> compare, at smoke scale on Fashion-MNIST."""
    snakemake("--cores", "2", "--directory", str(tmp_path), "--config", *TAS_TINY)
    tas = tmp_path / "results/smoke/tas"
    search = json.loads((tas / "search/tas-C010-ResNet20/seed0/search.json").read_text())
    assert search["details"]["epochs"] == 1 and search["record"]["search_split"]["sizes"] == {"weights": 128, "architecture": 128}
    kd = json.loads((tas / "searched-C010-ResNet20-kd/seed0/metrics.json").read_text())
    assert kd["recipe"]["distill"] == {"teacher": "results/smoke/tas/ResNet20-C10/seed0/checkpoint.pt",
                                       "temperature": 4.0, "alpha": 0.9}
    plain = json.loads((tas / "searched-C010-ResNet20-nokd/seed0/metrics.json").read_text())
    assert plain["recipe"]["distill"] is None and plain["spec"]["channels"] == kd["spec"]["channels"]
    assert not (tas / "C010-ResNet20/seed0/checkpoint.pt").exists()  # released shapes train at paper scale only

    table = pd.read_csv(tas / "tables/table3-cifar10.csv")
    rows = table[table.model.str.startswith("ResNet-20 TAS [")].set_index(["model", "metric"])
    released = rows.loc["ResNet-20 TAS [released shape, KD]"]
    assert released.loc["macs", "verdict"] == released.loc["macs_reduction", "verdict"] == "reproduced"
    teacher_macs = json.loads((tas / "ResNet20-C10/seed0/arch_metrics.json").read_text())["macs"]
    shape_macs = json.loads((tas / "C010-ResNet20/seed0/arch_metrics.json").read_text())["macs"]
    assert released.loc["macs_reduction", "reproduced_mean"] == pytest.approx(100 * (1 - shape_macs / teacher_macs))
    for label in ("searched, KD", "searched, no KD"):
        searched = rows.loc[f"ResNet-20 TAS [{label}]"]
        assert set(searched.verdict) == {"not comparable at this scale"}
        assert searched.loc["acc_drop", "n"] == 1
    c100 = pd.read_csv(tas / "tables/table3-cifar100.csv").set_index(["model", "metric"])
    assert c100.loc[("ResNet-56 TAS [released shape, KD]", "macs_reduction"), "verdict"] == "reproduced"
    assert c100.loc[("ResNet-56 TAS [released shape, KD]", "top1"), "verdict"] == "not run"
    assert (tmp_path / "results/smoke/report.html").is_file()


AUTOSLIM_TINY = ["scale=smoke", "papers=[autoslim]",
                 "experiments=[AutoSlim-MBv2x0.35-C10-0.5x,mobilenet_v2-305M]",
                 "recipe_overrides={epochs: 1, train_subset: 500, test_subset: 200, batch_size: 64, calibration_batches: 1}"]  # 100 held out


def test_autoslim_chain_end_to_end(tmp_path):
    """Super-network -> greedy slimming -> retrain the slimmed shape and the default width -> compare."""
    snakemake("--cores", "2", "--directory", str(tmp_path), "--config", *AUTOSLIM_TINY)
    autoslim = tmp_path / "results/smoke/autoslim"
    search_dir = autoslim / "search/autoslim-MBv2x0.35-C10/seed0"
    search = json.loads((search_dir / "search.json").read_text())
    found = search["targets"]["0.5x"]
    assert found["macs"] <= 0.5 * search["base_macs"] < found["details"]["previous_macs"]
    assert (search_dir / "supernet.pt").is_file() and (search_dir / "slim_log.csv").is_file()
    slimmed = json.loads((autoslim / "AutoSlim-MBv2x0.35-C10-0.5x/seed0/metrics.json").read_text())
    default = json.loads((autoslim / "MBv2x0.35-C10/seed0/metrics.json").read_text())
    assert slimmed["spec"]["channels"] == found["arch"]["channels"]
    assert slimmed["recipe"] == default["recipe"]  # the same recipe for the found and the default widths
    assert slimmed["architecture"]["macs"] < default["architecture"]["macs"]
    table = pd.read_csv(autoslim / "tables/table1-imagenet.csv").set_index(["model", "metric"])
    released = table.loc["AutoSlim-MobileNetV2 305M [released config]"]
    assert released.loc["macs", "verdict"] == released.loc["params_no_norm", "verdict"] == "reproduced"
    assert released.loc["top1_err", "verdict"] == "not run"  # released configs train at paper scale only


def test_a_paper_is_added_by_adding_its_folder(tmp_path):
    """Replications are discovered from replications/: a copy under a new name is planned with no
    change to any other file."""
    for name in ("Snakefile", "workflows", "replications"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    shutil.copytree(tmp_path / "replications/baselines", tmp_path / "replications/anyname")
    result = subprocess.run([SNAKEMAKE, "--snakefile", str(tmp_path / "Snakefile"), "-n", "--directory",
                             str(tmp_path / "work"), "--config", "papers=[anyname]"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = job_counts(result.stdout)
    assert counts["reference_archs_anyname"] == 1 and counts["train"] == expected_jobs("smoke", ["baselines"])["train"]
    assert "results/smoke/anyname/resnet20-cifar10/seed0/metrics.json" in result.stdout


def test_a_manifest_sets_the_resources_of_its_jobs(tmp_path):
    """`resources` of a search (or experiment) at a scale reach the planned jobs; the others keep the
    scale's defaults."""
    for name in ("Snakefile", "workflows", "replications"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    manifest = tmp_path / "replications/tas/replication.yaml"
    text = manifest.read_text()
    anchor = "  tas-C010-ResNet20: {method: tas,"
    assert anchor in text
    manifest.write_text(text.replace(anchor, "  tas-C010-ResNet20: {resources: {paper: {gpu: 4, runtime: 999}}, method: tas,"))
    result = subprocess.run([SNAKEMAKE, "--snakefile", str(tmp_path / "Snakefile"), "-n", "--directory",
                             str(tmp_path / "work"), "--config", "scale=paper", "papers=[tas]",
                             "experiments=[searched-C010-ResNet20-kd]"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = result.stdout.split("\n\n")
    search = next(j for j in jobs if "rule search:" in j and "seed0" in j)
    train = next(j for j in jobs if "rule train:" in j)
    assert "gpu=4" in search and "runtime=999" in search
    assert "gpu=1" in train and "runtime=10080" in train


def test_a_train_job_with_several_gpus_runs_under_torchrun(tmp_path):
    chain = ["--config", "scale=paper", "papers=[baselines]", "experiments=[resnet20-cifar10]", "--directory",
             str(tmp_path)]
    several = snakemake("-n", "-p", *chain, "--set-resources", "train:gpu=2").stdout
    assert "torchrun --standalone --nproc_per_node 2 -m nas_impl.cli train --arch" in several
    one = snakemake("-n", "-p", *chain).stdout
    assert "torchrun" not in one and "nasrepro train --arch" in one
