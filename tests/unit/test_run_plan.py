"""The workflow's plan as plain Python (nas_impl/run_plan.py), on the real replications: which
experiments, seeds, datasets and files a run has."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_impl.replication import load_replication
from nas_impl.run_plan import RunPlan

ROOT = Path(__file__).resolve().parents[2] / "replications"
REPS = {name: load_replication(ROOT / name) for name in ("baselines", "tas", "autoslim", "proxylessnas")}


def plan(scale="smoke", **config) -> RunPlan:
    return RunPlan.from_config(REPS, {"scale": scale, **config})


def test_narrowed_experiments_bring_their_teachers_and_baselines():
    chosen = plan(experiments=["searched-C010-ResNet20-kd"]).experiments("tas")
    assert chosen == ["ResNet20-C10", "searched-C010-ResNet20-kd"]  # teacher and baseline, in manifest order
    assert plan(experiments=["resnet20-cifar10"]).experiments("tas") == []


def test_reference_and_searched_experiments_partition_the_runs():
    p = plan()
    for paper in REPS:
        reference = set(p.reference_experiments(paper))
        searched = set(p.experiments(paper)) - reference
        assert searched <= set(p.searched_experiments())
        assert all(REPS[paper].experiments[e].search is None for e in reference)
    assert "searched-C010-ResNet20-kd" in p.searched_experiments()
    files = p.reference_arch_files("baselines")
    assert "results/smoke/baselines/resnet20-cifar10/seed{seed}/arch_metrics.json" in files
    assert len(files) == 2 * len(p.reference_experiments("baselines"))


def test_seeds_and_datasets_follow_the_config():
    assert plan().seeds("tas") == list(REPS["tas"].seeds["smoke"])
    assert plan(seeds=[0, 1, 2]).seeds("tas") == [0, 1, 2]
    assert plan().run_dataset("baselines", "resnet20-cifar10") == "fashion-mnist"
    substituted = plan("reduced", dataset_substitutes={"cifar10": "cifar10-jpg"})
    assert substituted.run_dataset("baselines", "resnet20-cifar10") == "cifar10-jpg"
    assert substituted.search_dataset("tas", "tas-C010-ResNet20") == "cifar10-jpg"


def test_eval_files_only_of_trained_runs():
    p = plan()
    evals = p.run_files("baselines", "eval.json")
    assert "results/smoke/baselines/resnet20-cifar10/seed0/eval.json" in evals
    assert not any("resnet164-cifar10" in f for f in evals)  # measured, not trained, at smoke
    assert "results/smoke/baselines/resnet164-cifar10/seed0/arch_metrics.json" in p.run_files("baselines",
                                                                                             "arch_metrics.json")


@pytest.mark.parametrize("experiment, source", [
    ("searched-C010-ResNet20-kd", "results/smoke/tas/search/tas-C010-ResNet20/seed1/arch.yaml"),
    ("AutoSlim-MBv2x0.35-C10-0.5x", "results/smoke/autoslim/search/autoslim-MBv2x0.35-C10/seed1/search.json"),
])
def test_a_searched_experiment_reads_its_search_of_the_same_seed(experiment, source):
    paper = "tas" if experiment.startswith("searched") else "autoslim"
    assert plan().searched_arch_source(paper, experiment, 1) == source


def test_tables_plots_and_their_reference_copies():
    p = plan()
    assert p.tables("tas")[0] == "results/smoke/tas/tables/table3-cifar10.csv"
    assert len(p.all_tables()) == len(p.all_plots()) == sum(len(r.tables) for r in REPS.values())
    assert p.reference_tables()[0].startswith("results/reference/smoke/")
    assert p.teacher_dir("tas", "searched-C010-ResNet20-kd", 0) == "results/smoke/tas/ResNet20-C10/seed0"
    assert p.teacher_dir("tas", "ResNet20-C10", 0) is None


def test_the_nets_of_a_latency_order_and_the_latency_searched_nets_are_timed():
    table3 = ["proxyless_gpu", "proxyless_cpu", "proxyless_mobile"]
    assert plan().timed_experiments("proxylessnas") == [*table3, "Proxyless-smoke"]
    searched = ["Proxyless-mobile-C10", "Proxyless-G-mobile-ImageNet", "Proxyless-R-mobile-ImageNet",
                "Proxyless-gpu-ImageNet", "Proxyless-cpu-ImageNet"]
    assert plan("paper").latency_targeted_experiments("proxylessnas") == searched
    assert plan("paper").timed_experiments("proxylessnas") == [*table3, *searched]
    assert plan("reduced").latency_target_inputs("proxylessnas") == [
        "results/reduced/proxylessnas/Proxyless-mobile-C10/seed0/latency.json"]
    assert plan().latency_target_tables() == ["results/smoke/proxylessnas/latency_targets.csv"]
    assert plan(experiments=["proxyless_gpu"]).latency_target_tables() == []  # no searched net in the run
    assert all(plan().latency_targeted_experiments(p) == [] for p in ("baselines", "tas", "autoslim"))
    compared = plan().compare_inputs("proxylessnas")  # compare reads the latency of Table 3's nets only
    assert "results/smoke/proxylessnas/proxyless_cpu/seed0/latency.json" in compared
    assert "results/smoke/proxylessnas/Proxyless-smoke/seed0/latency.json" not in compared
    assert all(plan().timed_experiments(p) == [] for p in ("baselines", "tas", "autoslim"))
    inputs = plan().compare_inputs("proxylessnas")
    assert "results/smoke/proxylessnas/proxyless_cpu/seed0/latency.json" in inputs
    assert not any(f.endswith("latency.json") for f in plan().compare_inputs("tas"))


def test_job_resources_default_to_the_scale_and_follow_the_manifest():
    import dataclasses

    defaults = {"gpu": 1, "mem_mb": 32000, "runtime": 720}
    tas = REPS["tas"]
    search = dataclasses.replace(tas.searches["tas-C010-ResNet20"], resources={"paper": {"gpu": 4, "runtime": 999}})
    changed = dataclasses.replace(tas, searches={**tas.searches, "tas-C010-ResNet20": search})
    paper = RunPlan.from_config({**REPS, "tas": changed}, {"scale": "paper"})
    assert paper.search_resources("tas", "tas-C010-ResNet20", defaults) == {"gpu": 4, "mem_mb": 32000, "runtime": 999}
    assert paper.experiment_resources("tas", "ResNet20-C10", defaults) == defaults
    reduced = RunPlan.from_config({**REPS, "tas": changed}, {"scale": "reduced"})
    assert reduced.search_resources("tas", "tas-C010-ResNet20", defaults) == defaults  # set for paper scale only
