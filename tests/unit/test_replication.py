"""Replication manifests, published.csv validation, comparison verdicts and the regression check."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas_impl.cli import main
from nas_impl.errors import SpecError
from nas_impl.replication import compare_replication, load_published, load_replication
from nas_impl.replication.regress import regress

ROOT = Path(__file__).resolve().parents[2]
HEADER = "table,dataset,model,metric,value,unit,source,note\n"


def write_replication(tmp_path: Path, published: str, **overrides) -> Path:
    """A one-experiment replication (ResNet-20 on CIFAR-10) in tmp_path."""
    root = tmp_path / "toy"  # the folder names the paper
    (root / "archs").mkdir(parents=True)
    shutil.copy(ROOT / "replications/baselines/archs/resnet20-cifar.yaml", root / "archs/resnet20-cifar.yaml")
    (root / "published.csv").write_text(HEADER + published)
    manifest = {
        "title": "toy",
        "datasets": {"cifar10": {"smoke": "fashion-mnist", "reduced": "cifar10", "paper": "cifar10"}},
        "recipes": {"r": {"smoke": {"epochs": 1}, "reduced": {"epochs": 2}, "paper": {"epochs": 3}}},
        "experiments": {"r20": {"arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "r",
                                "claims": [{"table": "t", "model": "ResNet-20"}]}},
        "seeds": {"smoke": [0], "reduced": [0], "paper": [0, 1]},
        **overrides,
    }
    (root / "replication.yaml").write_text(yaml.safe_dump(manifest))
    return root


def write_run(results: Path, seed: int, top1: float, macs: float, params: float, dataset: str) -> None:
    run = results / "r20" / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    (run / "eval.json").write_text(json.dumps({"top1": top1, "top5": 99.0, "dataset": dataset}))
    (run / "arch_metrics.json").write_text(json.dumps({"macs": macs, "params": params, "params_no_norm": params}))


PUBLISHED = ("t,cifar10,ResNet-20,macs,40.81,M,src,\n"
             "t,cifar10,ResNet-20,params,0.27,M,src,\n"
             "t,cifar10,ResNet-20,top1_err,7.26,%,src,[unverified]\n"
             "t,cifar10,ResNet-99,top1_err,5.00,%,src,\n")


# -- manifests and published rows ------------------------------------------------------------------
def test_the_baselines_replication_is_valid():
    rep = load_replication(ROOT / "replications/baselines")
    assert rep.tables == ["cifar10-resnets", "cifar100-resnets", "imagenet-mobilenetv2", "imagenet-resnets"]
    assert rep.recipe("cifar", "paper").sources["epochs"].startswith("TAS")
    assert all(rep.recipe(name, "paper").sources for name in rep.recipes), "paper recipes carry sources"


@pytest.mark.parametrize("row, message", [
    ("t,cifar10,R,accuracy,7,%,src,", r"row 2: unknown metric 'accuracy'"),
    ("t,cifar10,R,macs,40,%,src,", r"row 2: unit '%' does not fit metric 'macs'"),
    ("t,cifar10,R,macs,forty,M,src,", r"row 2: value 'forty' is not a number"),
    ("t,cifar10,R,macs,40,M,,", r"row 2: column 'source' is empty"),
    ("t,cifar10,R,macs,40,M,src,\nt,cifar10,R,macs,41,M,src,", r"row 3: duplicates row 2"),
    ("t,cifar10,R,search_gpu_h,200,GPU h,src,", r"row 2: unit 'GPU h' does not fit metric 'search_gpu_h' \(use h\)"),
])
def test_malformed_published_rows_are_named(tmp_path, row, message):
    path = tmp_path / "published.csv"
    path.write_text(HEADER + row + "\n")
    with pytest.raises(SpecError, match=message):
        load_published(path)


def test_published_header_must_have_every_column(tmp_path):
    path = tmp_path / "published.csv"
    path.write_text("table,model,value\nt,R,1\n")
    with pytest.raises(SpecError, match=r"missing column\(s\) \['dataset', 'metric', 'unit', 'source', 'note'\]"):
        load_published(path)


@pytest.mark.parametrize("override, message", [
    ({"experiments": {"r20": {"arch": "nope", "dataset": "cifar10", "recipe": "r", "claims": []}}}, r"archs/nope\.yaml does not exist"),
    ({"experiments": {"r20": {"arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "r",
                              "claims": [{"table": "t", "model": "ResNet-21"}]}}}, "no published row has table 't' and model 'ResNet-21'"),
    ({"recipes": {"r": {"smoke": {"epochs": 1, "lr": -1}, "reduced": {"epochs": 1}, "paper": {"epochs": 1}}}}, r"recipes\.r\.smoke.*'lr'"),
    ({"recipes": {"r": {"smoke": {"epochs": 1}}}}, r"key 'reduced' is missing in 'recipes\.r'; add it"),
    ({"accuracy_scales": ["huge"]}, r"key 'accuracy_scales\.0'"),
])
def test_invalid_manifests_name_the_key(tmp_path, override, message):
    root = write_replication(tmp_path, PUBLISHED, **override)
    with pytest.raises(SpecError, match=message):
        load_replication(root)


IMAGENET_AUGMENT = {"flip": True, "color_jitter": [0.4, 0.4, 0.4, 0.2], "lighting": 0.1}


@pytest.mark.parametrize("dataset, scale, message", [
    ("cifar10", "paper", r"replication\.yaml: recipes\.r\.paper: recipe keys 'augment\.color_jitter' and "
                         r"'augment\.lighting' apply to ImageNet only .*; experiment 'r20' trains it at paper scale on "
                         r"dataset 'cifar10', which is augmented on the device .*: remove them"),
    ("imagenet", "smoke", r"recipes\.r\.smoke: .* experiment 'r20' trains it at smoke scale on dataset 'fashion-mnist'"),
    ("imagenet", "paper", None),  # ImageNet at paper scale: valid
])
def test_imagenet_only_augmentation_must_train_on_imagenet(tmp_path, dataset, scale, message):
    recipes = {"r": {"smoke": {"epochs": 1}, "reduced": {"epochs": 2}, "paper": {"epochs": 3}}}
    recipes["r"][scale]["augment"] = {"value": IMAGENET_AUGMENT, "source": "official transform"}
    root = write_replication(tmp_path, PUBLISHED, recipes=recipes, datasets={
        "cifar10": {"smoke": "fashion-mnist", "reduced": dataset, "paper": dataset}})
    if message is None:
        assert load_replication(root).recipe("r", "paper").augment == IMAGENET_AUGMENT
    else:
        with pytest.raises(SpecError, match=message):
            load_replication(root)


def test_imagenet_only_augmentation_of_a_search_must_search_on_imagenet(tmp_path):
    recipes = {scale: {"epochs": 1, "target_ratio": 0.5} for scale in ("smoke", "reduced", "paper")}
    recipes["paper"]["augment"] = {"lighting": 0.1}
    root = write_replication(tmp_path, PUBLISHED, search_recipes={"s": recipes}, searches={
        "x": {"method": "tas", "arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "s"}})
    with pytest.raises(SpecError, match=r"search_recipes\.s\.paper: recipe key 'augment\.lighting' applies to "
                                        r"ImageNet only .*search 'x' trains it at paper scale on dataset 'cifar10'"):
        load_replication(root)


def test_schema_defaults_are_filled(tmp_path):
    rep = load_replication(write_replication(tmp_path, PUBLISHED))
    assert rep.accuracy_scales == ("paper",) and rep.accuracy_tolerance == 0.5 and rep.architecture_tolerance == 0.01
    assert rep.experiments["r20"].scales == ("smoke", "reduced", "paper")


# -- verdicts ---------------------------------------------------------------------------------------
def verdicts(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(r.model, r.metric): r.verdict for r in table.itertuples()}


def test_each_verdict(tmp_path):
    rep = load_replication(write_replication(tmp_path, PUBLISHED))
    results = tmp_path / "results"
    write_run(results, 0, top1=92.9, macs=40.813e6, params=0.281e6, dataset="cifar10")  # params 4% off
    write_run(results, 1, top1=92.5, macs=40.813e6, params=0.281e6, dataset="cifar10")
    table = compare_replication(rep, results, "paper")["t"]
    assert verdicts(table) == {
        ("ResNet-20", "macs"): "reproduced",
        ("ResNet-20", "params"): "not reproduced",
        ("ResNet-20", "top1_err"): "reproduced",  # mean error 7.3 vs 7.26
        ("ResNet-99", "top1_err"): "not run",  # no experiment claims it
    }
    err = table[table.metric == "top1_err"].iloc[0]
    assert err.reproduced_mean == pytest.approx(7.3) and err.n == 2
    assert err.reproduced_std == pytest.approx(math.sqrt(0.08)) and err.delta == pytest.approx(0.04)
    assert err.tolerance == 0.5 and err.note == "[unverified]"
    macs = table[table.metric == "macs"].iloc[0]
    assert macs.tolerance == pytest.approx(0.4081) and macs.unit == "M"


def test_a_published_value_that_contradicts_its_table_is_measured_and_flagged_not_failed(tmp_path):
    why = "ResNet-110 is listed with less intermediate memory than ResNet-56, whose layers it contains"
    published = ('t,cifar10,ResNet-20,params,0.20,M,src,"[secondary] [inconsistent: ' + why + ']"\n'
                 "t,cifar10,ResNet-20,macs,40.81,M,src,\n")
    rep = load_replication(write_replication(tmp_path, published))
    assert rep.published[0].inconsistency == why and rep.published[1].inconsistency is None
    results = tmp_path / "results"
    write_run(results, 0, top1=92.9, macs=40.813e6, params=0.2703e6, dataset="cifar10")  # 35% above 0.20
    table = compare_replication(rep, results, "smoke")["t"]
    params = table[table.metric == "params"].iloc[0]
    assert params.verdict == "published value inconsistent" and params.reason == "the published table contradicts itself"
    assert params.reproduced_mean == pytest.approx(0.2703) and why in params.note
    assert verdicts(table)[("ResNet-20", "macs")] == "reproduced"
    unmeasured = compare_replication(rep, tmp_path / "nothing", "smoke")["t"]
    assert set(unmeasured.verdict) == {"not run"}  # nothing measured: nothing to set beside the source


def test_memnas_rows_flag_the_tables_contradictions_read_params_memory_and_report_savings(tmp_path):
    """MemNAS's README tables (memnas.md §1): the rows that contradict their own table (§5.4, §6 #11)
    carry `[inconsistent: ...]`; params memory is the parameters without BN x 4 B in MB (1e6); savings, relative to MemNAS
    nets the suite cannot build, are reported, never judged."""
    rep = load_replication(ROOT / "replications/memnas")
    assert rep.tables == ["cifar10", "imagenet"]
    flagged = {(row.table, row.model, row.metric) for row in rep.published if row.inconsistency}
    section_5_4 = {
        ("cifar10", "ResNet-110", "memory_mb"), ("cifar10", "ResNet-56", "memory_mb"),
        ("cifar10", "ResNet-110", "memory_savings"), ("cifar10", "ResNet-56", "memory_savings"),
        ("cifar10", "MobileNet-V2", "params_memory_mb"),
        ("imagenet", "MobileNet V2 (1.3x)", "memory_mb"), ("imagenet", "MobileNet V2 (1.0x)", "memory_mb"),
        ("imagenet", "ShuffleNet V2 (2.0x)", "memory_mb"), ("imagenet", "ShuffleNet V2 (1.5x)", "memory_mb"),
        ("imagenet", "MobileNet V2 (1.4x)", "params_memory_mb"), ("imagenet", "ShuffleNet V2 (2.0x)", "params_memory_mb"),
        ("imagenet", "FBNet-C", "params_memory_mb"),
    }
    assert section_5_4 <= flagged
    assert flagged - section_5_4 == {("imagenet", "FBNet-B", "memory_savings")}  # found by the suite
    # One MobileNetV2 1.0x, measured: torchvision's 3,504,872 params, 3,470,760 without BN (TF-slim's 3.47M).
    run = tmp_path / "results" / "MobileNetV2-1.0x" / "seed0"
    run.mkdir(parents=True)
    (run / "arch_metrics.json").write_text(json.dumps({"params": 3504872, "params_no_norm": 3470760,
                                                       "param_bytes": 3504872 * 4,
                                                       "total_memory_bytes": 20040608}))
    table = compare_replication(rep, tmp_path / "results", "smoke")["imagenet"]
    mbv2 = table[table.model == "MobileNet V2 (1.0x)"].set_index("metric")
    assert mbv2.loc["params_memory_mb", "reproduced_mean"] == pytest.approx(13.88304)
    assert mbv2.loc["params_memory_mb", "verdict"] == "reproduced"  # published 13.9, within 1%
    assert mbv2.loc["memory_mb", "verdict"] == "published value inconsistent"  # the 1.3x vs 1.0x totals
    assert mbv2.loc["top1", "verdict"] == "not run"  # measured, not trained, at smoke scale
    savings = pd.concat(compare_replication(rep, tmp_path / "results", "paper").values()).query(
        "metric == 'memory_savings'")
    assert len(savings) == 28 and set(savings.verdict) == {"not run"}  # 8 CIFAR-10 + 20 ImageNet rows
    assert set(savings.reason) == {"a saving relative to a net the suite cannot build is reported, not judged"}
    assert savings.reproduced_mean.isna().all()


def test_a_search_cost_is_reported_not_judged(tmp_path):
    """A published search cost (GPU hours) loads, and is "not run" with its own reason whether an
    experiment claims its model (ResNet-20) or not (ResNet-99), results present or not."""
    published = PUBLISHED + ("t,cifar10,ResNet-20,search_gpu_h,200,h,src,[secondary]\n"
                             "t,cifar10,ResNet-99,search_gpu_h,40000,h,src,[unverified]\n")
    rep = load_replication(write_replication(tmp_path, published))
    cost = [row for row in rep.published if row.metric == "search_gpu_h"]
    assert [(row.model, row.value, row.unit) for row in cost] == [("ResNet-20", 200.0, "h"),
                                                                  ("ResNet-99", 40000.0, "h")]
    results = tmp_path / "results"
    write_run(results, 0, top1=92.9, macs=40.813e6, params=0.272e6, dataset="cifar10")
    for results_dir in (results, tmp_path / "nothing"):
        table = compare_replication(rep, results_dir, "paper")["t"]
        rows = table[table.metric == "search_gpu_h"]
        assert list(rows.verdict) == ["not run", "not run"]
        assert set(rows.reason) == {"a search cost is reported, not judged"}
        assert all("search.json" in note for note in rows.note)
        assert rows.iloc[0].note.startswith("[secondary]") and rows.iloc[0].published == 200.0
    assert verdicts(compare_replication(rep, results, "paper")["t"])[("ResNet-20", "macs")] == "reproduced"


# Table 3 of ProxylessNAS in small: three nets, each published fastest on its own device.
TIMED = {"GPU-net": {"latency_gpu_ms": 5.1, "latency_cpu_ms": 204.9, "latency_mobile_ms": 124},
         "CPU-net": {"latency_gpu_ms": 7.4, "latency_cpu_ms": 138.7, "latency_mobile_ms": 116},
         "mobile-net": {"latency_gpu_ms": 7.2, "latency_cpu_ms": 164.1, "latency_mobile_ms": 78}}


def write_timed(tmp_path: Path, measured: dict[str, float], device: str = "cpu") -> tuple:
    published = "".join(f"t3,cifar10,{net},{metric},{value},ms,src,\n"
                        for net, row in TIMED.items() for metric, value in row.items())
    experiments = {net: {"arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "r",
                         "claims": [{"table": "t3", "model": net, "label": "released"}]} for net in TIMED}
    rep = load_replication(write_replication(tmp_path, published, experiments=experiments))
    for net, ms in measured.items():
        run = tmp_path / "results" / net / "seed0"
        run.mkdir(parents=True, exist_ok=True)
        (run / "latency.json").write_text(json.dumps({"macs": 1, "latency": {"median_ms": ms, "device": device}}))
    return rep, tmp_path / "results"


def test_latency_on_a_kind_of_device_is_judged_as_the_order_of_the_nets(tmp_path):
    # Measured here: CPU-net fastest, then mobile-net, then GPU-net: the paper's CPU order.
    rep, results = write_timed(tmp_path, {"GPU-net": 30.0, "CPU-net": 12.0, "mobile-net": 20.0})
    table = compare_replication(rep, results, "smoke")["t3"]
    cpu = table[table.metric == "latency_cpu_ms"]
    assert list(cpu.verdict) == ["reproduced"] * 3 and list(cpu.reproduced_mean) == [30.0, 12.0, 20.0]
    assert "rank 1 of 3 here, 1 in the paper" in cpu.iloc[1].note and set(cpu.reason) == {""}
    others = table[table.metric != "latency_cpu_ms"]  # no GPU here, and never a phone
    assert set(others.verdict) == {"not run"} and set(others.reason) == {"no cuda device here", "no mobile device here"}
    # The GPU-net measured faster than the mobile-net: those two rows break the paper's order.
    rep, results = write_timed(tmp_path / "swapped", {"GPU-net": 15.0, "CPU-net": 12.0, "mobile-net": 20.0})
    cpu = compare_replication(rep, results, "smoke")["t3"].query("metric == 'latency_cpu_ms'")
    assert list(cpu.verdict) == ["not reproduced", "reproduced", "not reproduced"]


def test_a_latency_order_needs_two_nets_measured_on_that_kind_of_device(tmp_path):
    rep, results = write_timed(tmp_path, {"CPU-net": 12.0})
    cpu = compare_replication(rep, results, "smoke")["t3"].query("metric == 'latency_cpu_ms'")
    assert list(cpu.verdict) == ["not run", "not comparable at this scale", "not run"]
    assert cpu.iloc[1].reason == "an order needs two nets or more" and "reported, not judged" in cpu.iloc[1].note
    assert cpu.iloc[0].reason == "results missing" and "no latency.json of experiment 'GPU-net'" in cpu.iloc[0].note
    # Measured on a GPU: the CPU rows have no value and the GPU rows are judged.
    rep, results = write_timed(tmp_path / "gpu", {"GPU-net": 1.0, "CPU-net": 3.0, "mobile-net": 2.0}, "cuda:0")
    table = compare_replication(rep, results, "smoke")["t3"]
    assert set(table.query("metric == 'latency_cpu_ms'").verdict) == {"not run"}
    assert set(table.query("metric == 'latency_gpu_ms'").verdict) == {"reproduced"}


def test_regress_allows_the_accuracy_of_a_searched_shape_its_cross_cpu_move(tmp_path):
    def tables(directory: Path, drop: float, searched: bool | None) -> None:
        row = {"paper": "toy", "table": "t", "model": "R20 TAS", "metric": "acc_drop", "reproduced_mean": drop,
               "reproduced_std": 0.115, "n": 3 if searched is None else 1, "verdict": "not comparable at this scale"}
        (directory / "toy/tables").mkdir(parents=True)
        frame = pd.DataFrame([row if searched is None else {**row, "searched": searched}])
        frame.to_csv(directory / "toy/tables/t.csv", index=False)

    tables(tmp_path / "ref", 13.57, None)  # a reference made before the column existed
    tables(tmp_path / "amd", 10.80, True)
    assert regress(tmp_path / "amd", tmp_path / "ref") == []
    tables(tmp_path / "plain", 10.80, False)  # a fixed network's accuracy: the 2-point floor
    assert [d.message for d in regress(tmp_path / "plain", tmp_path / "ref")] == [
        "13.57 -> 10.8 (change -2.77, tolerance 2, reference 0.115 std over 3 seeds)"]
    tables(tmp_path / "far", 9.0, True)
    assert len(regress(tmp_path / "far", tmp_path / "ref")) == 1


def test_regress_checks_that_latency_was_measured_not_what_it_was(tmp_path):
    def tables(directory: Path, ms: float, verdict: str) -> None:
        (directory / "toy/tables").mkdir(parents=True)
        pd.DataFrame([{"paper": "toy", "table": "t3", "model": "CPU-net", "metric": "latency_cpu_ms",
                       "reproduced_mean": ms, "reproduced_std": float("nan"), "n": 1, "verdict": verdict}]
                     ).to_csv(directory / "toy/tables/t3.csv", index=False)

    tables(tmp_path / "ref", 12.0, "reproduced")
    tables(tmp_path / "other-machine", 40.0, "not reproduced")
    assert regress(tmp_path / "other-machine", tmp_path / "ref") == []
    tables(tmp_path / "unmeasured", float("nan"), "not run")
    assert [str(d) for d in regress(tmp_path / "unmeasured", tmp_path / "ref")] == [
        "toy/tables/t3.csv CPU-net latency_cpu_ms: latency now has no value, the reference one"]


def test_an_unknown_search_method_is_named_with_the_known_ones(tmp_path):
    root = write_replication(tmp_path, PUBLISHED, search_recipes={"s": {scale: {"epochs": 1} for scale in ("smoke", "reduced", "paper")}},
                             searches={"x": {"method": "tass", "arch": "resnet20-cifar", "dataset": "cifar10",
                                             "recipe": "s"}})
    with pytest.raises(SpecError, match=r"searches.x.method: unknown search method 'tass' \(did you mean 'tas'\?\); "
                                        r"known: autoshrink, autoslim, memnas, proxylessnas, tas"):
        load_replication(root)


def test_compare_reads_the_seeds_that_were_run_and_says_why_a_row_was_not_run(tmp_path):
    rep = load_replication(write_replication(tmp_path, PUBLISHED))
    results = tmp_path / "results"
    for seed, top1 in enumerate([92.0, 93.0, 95.0]):
        write_run(results, seed, top1=top1, macs=40.813e6, params=0.272e6, dataset="cifar10")
    by_default = compare_replication(rep, results, "paper")["t"]  # the manifest's paper seeds: 0 and 1
    assert by_default[by_default.metric == "top1_err"].iloc[0].n == 2
    table = compare_replication(rep, results, "paper", seeds=[0, 1, 2])["t"]
    err = table[table.metric == "top1_err"].iloc[0]
    assert err.n == 3 and err.reproduced_mean == pytest.approx(100 - 280 / 3)
    not_run = table[table.model == "ResNet-99"].iloc[0]
    assert not_run.verdict == "not run" and "no experiment of the replication claims this row" in not_run.note
    missing = compare_replication(rep, tmp_path / "nothing", "paper")["t"]
    assert "no results of experiment 'r20'" in missing[missing.model == "ResNet-20"].iloc[0].note


def test_accuracy_outside_the_paper_scale_is_not_comparable(tmp_path):
    rep = load_replication(write_replication(tmp_path, PUBLISHED))
    results = tmp_path / "results"
    write_run(results, 0, top1=80.0, macs=40.813e6, params=0.272e6, dataset="fashion-mnist")
    table = compare_replication(rep, results, "smoke")["t"]
    v = verdicts(table)
    assert v[("ResNet-20", "top1_err")] == "not comparable at this scale"
    assert v[("ResNet-20", "macs")] == v[("ResNet-20", "params")] == "reproduced"  # architecture: every scale
    assert "trained on fashion-mnist, the paper on cifar10" in table[table.metric == "top1_err"].iloc[0].note


def test_accuracy_on_a_substitute_dataset_is_not_comparable(tmp_path):
    rep = load_replication(write_replication(tmp_path, PUBLISHED))
    results = tmp_path / "results"
    write_run(results, 0, top1=92.7, macs=40.813e6, params=0.272e6, dataset="cifar10-jpg")
    assert verdicts(compare_replication(rep, results, "paper")["t"])[("ResNet-20", "top1_err")] == \
        "not comparable at this scale"


def test_the_published_figures_rounding_widens_the_tolerance(tmp_path):
    # "0.27" M stands for [0.265, 0.275]: 0.2745 is within rounding though 1.7% away.
    rep = load_replication(write_replication(tmp_path, PUBLISHED))
    write_run(tmp_path / "results", 0, top1=90, macs=40.8e6, params=0.2745e6, dataset="fashion-mnist")
    assert verdicts(compare_replication(rep, tmp_path / "results", "smoke")["t"])[("ResNet-20", "params")] == "reproduced"


# -- regression check -------------------------------------------------------------------------------
def make_tables(directory: Path, top1_err: float, macs: float, verdict: str = "reproduced", *, n: int = 1,
                top1_err_std: float = float("nan"), macs_std: float = float("nan")) -> None:
    rows = [{"paper": "toy", "table": "t", "model": "ResNet-20", "metric": "top1_err", "reproduced_mean": top1_err,
             "reproduced_std": top1_err_std, "n": n, "verdict": "not comparable at this scale"},
            {"paper": "toy", "table": "t", "model": "ResNet-20", "metric": "macs", "reproduced_mean": macs,
             "reproduced_std": macs_std, "n": n, "verdict": verdict}]
    (directory / "toy/tables").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(directory / "toy/tables/t.csv", index=False)


def test_regress_passes_within_tolerance_and_fails_with_a_readable_diff(tmp_path, capsys):
    make_tables(tmp_path / "ref", 20.0, 40.81)
    make_tables(tmp_path / "same", 21.5, 40.81)
    assert regress(tmp_path / "same", tmp_path / "ref") == []
    make_tables(tmp_path / "moved", 23.0, 40.82, verdict="not reproduced")
    diffs = [str(d) for d in regress(tmp_path / "moved", tmp_path / "ref")]
    assert diffs == [
        "toy/tables/t.csv ResNet-20 top1_err: 20 -> 23 (change +3, tolerance 2)",
        "toy/tables/t.csv ResNet-20 macs: verdict 'reproduced' -> 'not reproduced'",
        "toy/tables/t.csv ResNet-20 macs: 40.81 -> 40.82 (change +0.01, tolerance 4.081e-05)",
    ]
    assert main(["regress", str(tmp_path / "moved"), str(tmp_path / "ref")]) == 1
    err = capsys.readouterr().err
    assert "3 difference(s)" in err and "top1_err: 20 -> 23" in err
    assert main(["regress", str(tmp_path / "same"), str(tmp_path / "ref")]) == 0


def test_regress_allows_unjudged_searched_shapes_to_move_with_training(tmp_path):
    """A searched shape below its search scales ('not comparable') depends on training numerics."""
    make_tables(tmp_path / "ref", 20.0, 22.0, verdict="not comparable at this scale")
    make_tables(tmp_path / "near", 20.0, 22.0 * 1.24, verdict="not comparable at this scale")
    assert regress(tmp_path / "near", tmp_path / "ref") == []
    make_tables(tmp_path / "far", 20.0, 22.0 * 1.26, verdict="not comparable at this scale")
    assert [d.where for d in regress(tmp_path / "far", tmp_path / "ref")] == ["toy/tables/t.csv ResNet-20 macs"]


def test_regress_tolerance_follows_the_references_spread_over_seeds(tmp_path):
    """Reference: 3 seeds, top1_err std 1.5; a 1-seed run may move 4 standard errors of the difference
    of the means, 4 * 1.5 * sqrt(1/3 + 1/1) = 6.93 points, and not more."""
    make_tables(tmp_path / "ref", 30.0, 40.81, n=3, top1_err_std=1.5, macs_std=0.0)
    make_tables(tmp_path / "inside", 30.0 + 6.9, 40.81)
    assert regress(tmp_path / "inside", tmp_path / "ref") == []
    make_tables(tmp_path / "outside", 30.0 - 7.0, 40.81)
    assert [str(d) for d in regress(tmp_path / "outside", tmp_path / "ref")] == [
        "toy/tables/t.csv ResNet-20 top1_err: 30 -> 23 (change -7, tolerance 6.928, reference 1.5 std over 3 seeds)"]
    # a fixed architecture's MACs stay exact, whatever the spread of the accuracy
    make_tables(tmp_path / "macs", 30.0, 40.82)
    assert [d.where for d in regress(tmp_path / "macs", tmp_path / "ref")] == ["toy/tables/t.csv ResNet-20 macs"]
    # a tiny spread never tightens the check below the floor
    make_tables(tmp_path / "ref2", 30.0, 40.81, n=3, top1_err_std=0.01, macs_std=0.0)
    make_tables(tmp_path / "near", 31.9, 40.81)
    assert regress(tmp_path / "near", tmp_path / "ref2") == []


def test_regress_prints_both_environments_when_they_differ(tmp_path, capsys):
    make_tables(tmp_path / "ref", 20.0, 40.81)
    pd.DataFrame([{"field": "torch", "value": "2.0.0", "runs": 3}, {"field": "threads", "value": "1", "runs": 3}]
                 ).to_csv(tmp_path / "ref/environment.csv", index=False)
    make_tables(tmp_path / "moved", 25.0, 40.81)
    run = tmp_path / "moved/toy/r/seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"run": {"versions": {"torch": "9.9.9"}, "threads": 1}}))
    assert main(["regress", str(tmp_path / "moved"), str(tmp_path / "ref")]) == 1
    err = capsys.readouterr().err
    assert "the environments differ" in err and "torch: 2.0.0 (3) -> 9.9.9 (1)" in err
    assert "threads: 1 (3) -> 1 (1)" in err  # same value, other number of runs: shown too


def test_reference_verb_copies_tables_and_records_the_environment(tmp_path, capsys):
    make_tables(tmp_path / "results", 20.0, 40.81)
    run = tmp_path / "results/toy/r/seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"run": {"versions": {"torch": "2.5"}, "threads": 2}}))
    (tmp_path / "old/stale/tables").mkdir(parents=True)
    (tmp_path / "old/stale/tables/x.csv").write_text("a\n")
    assert main(["reference", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "old")]) == 0
    capsys.readouterr()
    assert sorted(str(p.relative_to(tmp_path / "old")) for p in (tmp_path / "old").rglob("*.csv")) == [
        "environment.csv", "toy/tables/t.csv"]
    assert regress(tmp_path / "results", tmp_path / "old") == []
    assert main(["regress", str(tmp_path / "results"), str(tmp_path / "old")]) == 0


def test_reference_of_some_papers_keeps_the_others_and_skips_stale_results(tmp_path, capsys):
    make_tables(tmp_path / "results", 20.0, 40.81)
    for where, text in (("results/stale", "old results\n"), ("ref/kept", "kept\n"), ("ref/toy", "replaced\n")):
        (tmp_path / where / "tables").mkdir(parents=True)
        (tmp_path / where / "tables/x.csv").write_text(text)
    args = ["reference", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "ref")]
    assert main([*args, "--papers", "toy"]) == 0
    ref = tmp_path / "ref"
    assert sorted(str(p.relative_to(ref)) for p in ref.rglob("*.csv")) == [
        "environment.csv", "kept/tables/x.csv", "toy/tables/t.csv"]
    assert (ref / "kept/tables/x.csv").read_text() == "kept\n"
    assert main([*args, "--papers", "absent"]) == 2
    assert "absent/tables/" in capsys.readouterr().err
    assert (ref / "kept/tables/x.csv").is_file()  # a refused call leaves the reference as it was


def test_regress_reports_missing_tables_and_rows(tmp_path):
    make_tables(tmp_path / "ref", 20.0, 40.81)
    assert [str(d) for d in regress(tmp_path / "empty", tmp_path / "ref")] == [
        f"toy/tables/t.csv: missing from {tmp_path / 'empty'} (run the workflow at this scale first)"]
    (tmp_path / "partial/toy/tables").mkdir(parents=True)
    pd.read_csv(tmp_path / "ref/toy/tables/t.csv").iloc[:1].to_csv(tmp_path / "partial/toy/tables/t.csv", index=False)
    assert [str(d) for d in regress(tmp_path / "partial", tmp_path / "ref")] == [
        "toy/tables/t.csv ResNet-20 macs: row missing from the results"]
    with pytest.raises(Exception, match="no reference tables"):
        regress(tmp_path / "partial", tmp_path / "nothing")


# -- searches, teachers, baselines, relative metrics -----------------------------------------------
SEARCHED = {
    "search_recipes": {"s": {"smoke": {"epochs": 1, "target_ratio": 0.5}, "reduced": {"epochs": 2, "target_ratio": 0.5},
                             "paper": {"epochs": 3, "target_ratio": 0.5}}},
    "searches": {"tas-r20": {"method": "tas", "arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "s",
                             "set": {"target_ratio": {"value": 0.55, "source": "Table 3"}}}},
    "experiments": {
        "r20": {"arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "r", "claims": []},
        "kd": {"search": "tas-r20", "dataset": "cifar10", "recipe": "r", "teacher": "r20", "baseline": "r20",
               "claims": [{"table": "t", "model": "R20 TAS", "label": "searched, KD"}]},
        "released": {"arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "r", "baseline": "r20",
                     "train_scales": ["paper"], "claims": [{"table": "t", "model": "R20 TAS", "label": "released"}]},
    },
}
SEARCHED_PUBLISHED = ("t,cifar10,R20 TAS,top1,92.88,%,src,\n"
                      "t,cifar10,R20 TAS,acc_drop,0.50,%,src,\n"
                      "t,cifar10,R20 TAS,macs_reduction,45.0,%,src,\n")


def test_the_tas_replication_is_valid():
    rep = load_replication(ROOT / "replications/tas")
    assert rep.tables == ["table3-cifar10", "table3-cifar100", "table4-imagenet"]
    assert all(row.unverified for row in rep.published), "the reference marks every Table 3/4 number [unverified]"
    r56 = rep.search_recipe("tas-C010-ResNet56", "paper")
    assert r56.tas.target_ratio == 0.47 and r56.weights.epochs == 600 and r56.tas.arch_betas == (0.5, 0.999)
    assert "README" in r56.weights.sources["target_ratio"]
    assert rep.recipe("retrain-kd", "paper").distill.alpha == 0.9
    assert rep.recipe("retrain", "paper").distill is None
    kd = rep.experiments["searched-C010-ResNet20-kd"]
    assert (kd.teacher, kd.baseline, kd.search) == ("ResNet20-C10", "ResNet20-C10", "tas-C010-ResNet20")
    assert rep.arch_path("searched-C010-ResNet20-kd").name == "resnet20-cifar.yaml"
    released = rep.experiments["C010-ResNet20"]
    assert not released.trained_at("smoke") and released.trained_at("paper")
    claimed = {(c.table, c.model) for e in rep.experiments.values() for c in e.claims}
    tas_rows = {(r.table, r.model) for r in rep.published if r.model.endswith(" TAS")}
    assert tas_rows == claimed and len(tas_rows) == 12


@pytest.mark.parametrize("change, message", [
    (lambda m: m["experiments"]["kd"].update(search="nope"), "experiments.kd.search: 'nope' is not a key of 'searches'"),
    (lambda m: m["experiments"]["kd"].update(teacher="kd"), "experiments.kd.teacher: 'kd' is not another experiment"),
    (lambda m: m["experiments"]["r20"].update(train_scales=["paper"]),
     "experiments.kd.teacher: experiment 'r20' does not run (or is not trained) at ['smoke', 'reduced']"),
    (lambda m: m["searches"]["tas-r20"].update(recipe="x"), "searches.tas-r20.recipe: 'x' is not a key of 'search_recipes'"),
    (lambda m: m["searches"]["tas-r20"]["set"].update(tau_schedule="exp"), "searches.tas-r20"),
    (lambda m: m["searches"]["tas-r20"].update(scales=["paper"]), "experiments.kd.scales: search 'tas-r20' does not run"),
    (lambda m: m["experiments"]["kd"].update(arch="resnet20-cifar"), "experiments.kd"),
])
def test_bad_search_and_teacher_references_are_named(tmp_path, change, message):
    manifest = yaml.safe_load(yaml.safe_dump(SEARCHED))
    change(manifest)
    with pytest.raises(SpecError, match="replication.yaml") as err:
        load_replication(write_replication(tmp_path, SEARCHED_PUBLISHED, **manifest))
    assert message in str(err.value)


def _write(results: Path, experiment: str, top1: float, macs: float) -> None:
    run = results / experiment / "seed0"
    run.mkdir(parents=True, exist_ok=True)
    (run / "eval.json").write_text(json.dumps({"top1": top1, "top5": 99.0, "dataset": "cifar10"}))
    (run / "arch_metrics.json").write_text(json.dumps({"macs": macs, "params": 1.0, "params_no_norm": 1.0}))


@pytest.mark.parametrize("scale", ["smoke", "reduced"])
def test_relative_metrics_labelled_claims_and_searched_verdicts(tmp_path, scale):
    rep = load_replication(write_replication(tmp_path, SEARCHED_PUBLISHED, **SEARCHED,
                                             seeds={"smoke": [0], "reduced": [0], "paper": [0]}))
    results = tmp_path / "results"
    _write(results, "r20", top1=92.0, macs=40.0e6)
    _write(results, "kd", top1=91.3, macs=23.2e6)  # reduction 42.0: 3.0 points off, inside 6.7% of 45
    _write(results, "released", top1=0.0, macs=22.0e6)  # reduction 45.0
    (results / "released/seed0/eval.json").unlink()  # not trained below paper scale
    table = compare_replication(rep, results, scale)["t"].set_index(["model", "metric"])
    assert list(dict.fromkeys(table.index.get_level_values(0))) == ["R20 TAS [searched, KD]", "R20 TAS [released]"]
    kd = table.loc["R20 TAS [searched, KD]"]
    assert kd.loc["acc_drop", "reproduced_mean"] == pytest.approx(92.0 - 91.3)
    assert kd.loc["macs_reduction", "reproduced_mean"] == pytest.approx(42.0)
    assert kd.loc["acc_drop", "verdict"] == "not comparable at this scale"
    expected = "reproduced" if scale == "reduced" else "not comparable at this scale"
    assert kd.loc["macs_reduction", "verdict"] == expected
    released = table.loc["R20 TAS [released]"]
    assert released.loc["macs_reduction", "reproduced_mean"] == pytest.approx(45.0)
    assert released.loc["macs_reduction", "verdict"] == "reproduced"
    assert released.loc["top1", "verdict"] == released.loc["acc_drop", "verdict"] == "not run"
    assert set(kd["searched"]) == {True} and set(released["searched"]) == {False}


def test_a_searched_shape_outside_the_search_tolerance_is_not_reproduced(tmp_path):
    rep = load_replication(write_replication(tmp_path, SEARCHED_PUBLISHED, **SEARCHED))
    results = tmp_path / "results"
    _write(results, "r20", top1=92.0, macs=40.0e6)
    _write(results, "kd", top1=91.3, macs=24.0e6)  # reduction 40.0: 5 points off
    row = compare_replication(rep, results, "reduced")["t"].set_index(["model", "metric"]).loc[
        ("R20 TAS [searched, KD]", "macs_reduction")]
    assert row["verdict"] == "not reproduced" and row["tolerance"] == pytest.approx(0.067 * 45.0)


def _write_search(results: Path, band: list[float], base_macs: float = 40.0e6) -> None:
    run = results / "search" / "tas-r20" / "seed0"
    run.mkdir(parents=True, exist_ok=True)
    shape = {"file": "arch-0.55x.yaml", "macs": 1.0, "ratio_of_base": 0.5, "arch": {}, "details": {"target_band": band}}
    (run / "search.json").write_text(json.dumps({"method": "tas", "base_macs": base_macs, "selected": "0.55x",
                                                 "targets": {"0.55x": shape}}))


@pytest.mark.parametrize("macs, verdict", [
    (18.8e6, "reproduced"),  # reduction 53.0: inside the band 45-55 (target 0.55, band [0.45, 0.55]) ...
    (16.9e6, "reproduced"),  # ... 57.75: within the tolerance (3.015 points) above it
    (16.7e6, "not reproduced"),  # 58.25: beyond it
    (23.2e6, "reproduced"),  # 42.0: 3.0 points below the band's low edge 45.0
    (23.4e6, "not reproduced"),  # 41.5
])
def test_a_searched_shape_is_judged_against_its_search_band(tmp_path, macs, verdict):
    rep = load_replication(write_replication(tmp_path, SEARCHED_PUBLISHED, **SEARCHED))
    results = tmp_path / "results"
    _write(results, "r20", top1=92.0, macs=40.0e6)
    _write(results, "kd", top1=91.3, macs=macs)
    _write_search(results, [0.45, 0.55])
    row = compare_replication(rep, results, "reduced")["t"].set_index(["model", "metric"]).loc[
        ("R20 TAS [searched, KD]", "macs_reduction")]
    assert row["tolerance"] == pytest.approx(0.067 * 45.0)
    assert row["verdict"] == verdict and row["delta"] == pytest.approx(100 * (1 - macs / 40.0e6) - 45.0)
    assert "target band 45-55 %" in row["note"]


def test_a_searched_shapes_macs_are_judged_against_the_band_times_the_baselines_macs(tmp_path):
    """The band is a ratio: in MACs it scales the baseline's count (40M here), not the search's own
    base (10M: a search on smaller images), so 22M lies in 18-22M (+/- 6.7% of the published 22.4M)."""
    published = SEARCHED_PUBLISHED + "t,cifar10,R20 TAS,macs,22.4,M,src,\n"
    rep = load_replication(write_replication(tmp_path, published, **SEARCHED))
    results = tmp_path / "results"
    _write(results, "r20", top1=92.0, macs=40.0e6)
    _write(results, "kd", top1=91.3, macs=23.0e6)
    _write_search(results, [0.45, 0.55], base_macs=10.0e6)
    rows = compare_replication(rep, results, "reduced")["t"].set_index(["model", "metric"])
    row = rows.loc[("R20 TAS [searched, KD]", "macs")]
    assert "target band 18-22 M" in row["note"] and row["verdict"] == "reproduced"  # 23 <= 22 + 1.5
    _write(results, "kd", top1=91.3, macs=24.0e6)
    row = compare_replication(rep, results, "reduced")["t"].set_index(["model", "metric"]).loc[
        ("R20 TAS [searched, KD]", "macs")]
    assert row["verdict"] == "not reproduced"


# -- schema errors as one line naming the key and the fix ------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(experimnts=m.pop("experiments")),
     "unknown key 'experimnts' at the top level (did you mean 'experiments'?); allowed: title, accuracy_scales, "
     "tolerances, seeds, datasets, recipes, search_scales, search_recipes, searches, experiments; keys starting with "
     "x- hold YAML anchors"),
    (lambda m: m["experiments"]["r20"].update(scale=["smoke"]),
     "unknown key 'scale' in 'experiments.r20' (did you mean 'scales'?); allowed: arch, search, search_target, "),
    (lambda m: m["experiments"]["r20"]["claims"].append({"table": "t", "model": "ResNet-20", "lable": "x"}),
     "unknown key 'lable' in 'experiments.r20.claims.1' (did you mean 'label'?)"),
    (lambda m: m["recipes"]["r"].update(smoek={"epochs": 1}), "unknown key 'smoek' in 'recipes.r' (did you mean 'smoke'?)"),
    (lambda m: m["tolerances"].update(acuracy=1.0), "unknown key 'acuracy' in 'tolerances' (did you mean 'accuracy'?)"),
    (lambda m: m["recipes"]["r"]["smoke"].update(lrr=0.1),
     "recipes.r.smoke: unknown recipe key(s) ['lrr'] (did you mean 'lr'?); allowed keys:"),
    (lambda m: m["recipes"]["r"]["smoke"].update(weight_decay="5e-4"),
     "recipes.r.smoke: recipe key 'weight_decay' = '5e-4' was read as a string: YAML needs a decimal point"),
    (lambda m: m["experiments"]["r20"].update(search="s"), "'experiments.r20' has 'arch' and 'search': give exactly one"),
    (lambda m: m["experiments"]["r20"].pop("arch"), "'experiments.r20' has neither: give exactly one of 'arch' or 'search'"),
    (lambda m: m["experiments"].update({"bad name": m["experiments"]["r20"]}),
     "name 'bad name' in 'experiments' may hold only letters, digits, '_', '.' and '-'"),
    (lambda m: m.pop("title"), "key 'title' is missing at the top level; add it"),
])
def test_schema_errors_name_the_key_and_the_fix(tmp_path, change, message):
    manifest = {"title": "toy", "tolerances": {},
                "datasets": {"cifar10": {"smoke": "fashion-mnist", "reduced": "cifar10", "paper": "cifar10"}},
                "recipes": {"r": {"smoke": {"epochs": 1}, "reduced": {"epochs": 2}, "paper": {"epochs": 3}}},
                "experiments": {"r20": {"arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "r",
                                        "claims": [{"table": "t", "model": "ResNet-20"}]}}}
    change(manifest)
    root = write_replication(tmp_path, PUBLISHED, **manifest)
    if "experimnts" in manifest or "title" not in manifest:  # write_replication's defaults would refill them
        (root / "replication.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(SpecError) as err:
        load_replication(root)
    assert str(err.value).startswith(f"{root / 'replication.yaml'}: "), str(err.value)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "does not match any of the regexes" not in str(err.value)


def test_x_keys_hold_anchors(tmp_path):
    root = write_replication(tmp_path, PUBLISHED, **{"x-recipe": {"epochs": 1}})
    assert load_replication(root).paper == "toy"


def test_unreadable_manifest_files_are_named(tmp_path):
    root = write_replication(tmp_path, PUBLISHED)
    manifest = root / "replication.yaml"
    text = manifest.read_text()
    manifest.write_bytes(text.replace("title: toy", "title: caf\xe9").encode("latin-1"))
    with pytest.raises(SpecError, match=rf"{manifest} is not UTF-8 text \(byte 0xe9 at offset \d+\): save it as UTF-8"):
        load_replication(root)
    manifest.write_text(text)
    published = root / "published.csv"
    published.write_bytes((HEADER + "t,cifar10,ResNet-20,macs,40.81,M,Tab. 1 \xa7 2,\n").encode("latin-1"))
    with pytest.raises(SpecError, match=rf"{published} is not UTF-8 text \(byte 0xa7"):
        load_replication(root)
    published.unlink()
    published.mkdir()
    with pytest.raises(SpecError, match=rf"{published} is a folder, not a file"):
        load_replication(root)
    manifest.unlink()
    manifest.mkdir()
    with pytest.raises(SpecError, match=rf"{manifest} is a folder, not a file"):
        load_replication(root)


def test_a_manifest_error_is_one_line_on_the_command_line(tmp_path, capsys):
    root = write_replication(tmp_path, PUBLISHED, experimnts={})
    code = main(["recipe", "--replication", str(root), "--name", "r", "--scale", "smoke", "--out", str(tmp_path / "r.yaml")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"nasrepro recipe: error: {root / 'replication.yaml'}: unknown key 'experimnts' at the top level")


def test_the_folder_names_the_paper(tmp_path):
    """A copied replication folder is a new replication: its tables carry the copy's name."""
    copy = tmp_path / "anyname"
    shutil.copytree(ROOT / "replications/baselines", copy)
    assert load_replication(copy).paper == "anyname"
    assert load_replication(ROOT / "replications/baselines").paper == "baselines"


def test_reference_of_papers_that_ran_nothing_keeps_the_environment(tmp_path, capsys):
    make_tables(tmp_path / "results", 20.0, 40.81)  # tables only: measured, nothing trained
    (tmp_path / "ref/kept/tables").mkdir(parents=True)
    (tmp_path / "ref/kept/tables/x.csv").write_text("kept\n")
    (tmp_path / "ref/environment.csv").write_text("field,value,runs\ntorch,2.5,3\n")
    args = ["reference", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "ref")]
    assert main([*args, "--papers", "toy"]) == 0, capsys.readouterr().err
    assert (tmp_path / "ref/environment.csv").read_text() == "field,value,runs\ntorch,2.5,3\n"


def test_a_searched_experiment_puts_its_own_search_time_beside_a_published_search_cost(tmp_path):
    published = "t,cifar10,Found,search_gpu_h,1.5,h,src,\n"
    search_recipes = {"s": {scale: {"epochs": 1, "target_ratio": 0.5} for scale in ("smoke", "reduced", "paper")}}
    root = write_replication(tmp_path, published, search_recipes=search_recipes, searches={
        "x": {"method": "tas", "arch": "resnet20-cifar", "dataset": "cifar10", "recipe": "s"}}, experiments={
        "found": {"search": "x", "dataset": "cifar10", "recipe": "r", "claims": [{"table": "t", "model": "Found"}]}})
    rep = load_replication(root)
    results = tmp_path / "results"
    for seed, seconds in ((0, 5400.0), (1, 1800.0)):
        (results / "search/x" / f"seed{seed}").mkdir(parents=True)
        (results / "search/x" / f"seed{seed}" / "search.json").write_text(json.dumps(
            {"wall_time_s": seconds, "run": {"device": "cpu", "device_name": "AMD EPYC", "threads": 2}}))
    row = compare_replication(rep, results, "paper")["t"].iloc[0]
    assert row.verdict == "not run" and row.reason == "a search cost is reported, not judged"
    assert row.note.endswith("this paper-scale search took 1.5 h on AMD EPYC, 2 threads (seed 0); "
                             "0.5 h on AMD EPYC, 2 threads (seed 1)")
    assert "took" not in compare_replication(rep, tmp_path / "nothing", "paper")["t"].iloc[0].note
