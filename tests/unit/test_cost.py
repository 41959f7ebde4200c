"""`nasrepro cost`: the projected device-hours of a replication before it runs
(nas_impl/cost/, the methods' work.py, commands/cost.py).

The golden values are worked out by hand in each test from the toy manifest's epochs, subsets and
the rates it is given, not by calling the module's own arithmetic."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nas_impl import cost
from nas_impl.cli import main
from nas_impl.replication import load_replication
from nas_impl.run_plan import RunPlan

REPO = Path(__file__).resolve().parents[2]
DEVICE = "Toy Accelerator 9000"

TOY_MANIFEST = textwrap.dedent("""\
    title: Toy replication for the cost projection
    seeds: {smoke: [0], reduced: [0], paper: [0, 1]}
    datasets:
      cifar10: {smoke: fashion-mnist, reduced: cifar10, paper: cifar10}
    recipes:
      short:
        smoke: {epochs: 1, batch_size: 8, train_subset: 64, test_subset: 32}
        reduced: {epochs: 1, batch_size: 8}
        paper: {epochs: 3, batch_size: 50, train_subset: 1000, test_subset: 200}
      long:
        smoke: {epochs: 1, batch_size: 8, train_subset: 64, test_subset: 32}
        reduced: {epochs: 1, batch_size: 8}
        paper: {epochs: 5, batch_size: 128}
      kd:
        smoke: {epochs: 1, batch_size: 8, train_subset: 64, test_subset: 32, distill: {temperature: 4, alpha: 0.9}}
        reduced: {epochs: 1, batch_size: 8, distill: {temperature: 4, alpha: 0.9}}
        paper: {epochs: 5, batch_size: 128, distill: {temperature: 4, alpha: 0.9}}
    experiments:
      small: {arch: resnet20-cifar, dataset: cifar10, recipe: short, claims: []}
      big: {arch: resnet32-cifar, dataset: cifar10, recipe: long, claims: []}
      student: {arch: resnet20-cifar, dataset: cifar10, recipe: kd, teacher: big, claims: [], scales: [paper]}
    """)


@pytest.fixture
def toy(tmp_path) -> Path:
    """replications/toy: two experiments (and a KD student) with known epochs and subsets."""
    root = tmp_path / "replications" / "toy"
    (root / "archs").mkdir(parents=True)
    for name in ("resnet20-cifar", "resnet32-cifar"):
        shutil.copy(REPO / "replications/baselines/archs" / f"{name}.yaml", root / "archs" / f"{name}.yaml")
    (root / "replication.yaml").write_text(TOY_MANIFEST)
    (root / "published.csv").write_text("table,dataset,model,metric,value,unit,source,note\n"
                                        "toy,cifar10,ResNet-20,macs,40.81,M,a toy,\n")
    return root


def toy_networks(root: Path) -> tuple[cost.Network, cost.Network]:
    small = cost.Network.of("resnet20-cifar", cost.read_spec(root / "archs/resnet20-cifar.yaml"), "cifar10")
    big = cost.Network.of("resnet32-cifar", cost.read_spec(root / "archs/resnet32-cifar.yaml"), "cifar10")
    return small, big


def rates_with(calibrated: dict[cost.Network, float]) -> cost.Rates:
    entries = {net.key: {"rate": rate, "steps": 3, "batch": 64} for net, rate in calibrated.items()}
    return cost.Rates(DEVICE, calibration={DEVICE: entries})


def by_row(projection: cost.Projection) -> dict[tuple[str, str], cost.Priced]:
    return {(r.job.rule, r.job.name): r for r in projection.rows}


# -- golden hours of a toy plan ------------------------------------------------------------------------
def test_toy_plan_hours_match_a_hand_count(toy):
    plan = RunPlan({"toy": load_replication(toy)}, "paper")
    small, big = toy_networks(toy)
    projection = cost.project(plan, rates_with({small: 100.0, big: 50.0}), gpus=4)
    rows = by_row(projection)

    # small: 3 epochs x 1,000 images at 100 img/s, plus 3 x 200 test images at a third of a step.
    small_train_s = 3 * 1000 / 100 + 3 * 200 / 3 / 100  # 30 + 2 = 32 s a seed
    small_eval_s = 200 / 3 / 100
    # big: 5 epochs of the whole CIFAR-10 (50,000 / 10,000) at 50 img/s.
    big_train_s = 5 * 50_000 / 50 + 5 * 10_000 / 3 / 50  # 5,000 + 333.3 s
    big_eval_s = 10_000 / 3 / 50
    # student (ResNet-20 at 100 img/s) distils from big: + the teacher's forward on every training image.
    student_train_s = 5 * 50_000 / 100 + 5 * 10_000 / 3 / 100 + 5 * 50_000 / 3 / 50
    student_eval_s = 10_000 / 3 / 100
    seeds = 2
    expected = {
        ("train", "small"): small_train_s, ("evaluate", "small"): small_eval_s,
        ("train", "big"): big_train_s, ("evaluate", "big"): big_eval_s,
        ("train", "student"): student_train_s, ("evaluate", "student"): student_eval_s,
    }
    assert set(rows) == set(expected)
    for key, seconds in expected.items():
        assert rows[key].seconds == pytest.approx(seconds), key
        assert rows[key].device_h == pytest.approx(seconds * seeds / 3600), key
        assert rows[key].job.seeds == seeds
        assert rows[key].rate.source == "calibrated"
    total_h = sum(expected.values()) * seeds / 3600
    assert projection.total_h == pytest.approx(total_h)
    # small and big alone: (32 + 0.667 + 5,333.3 + 66.67) s x 2 seeds = 10,865.3 s = 3.018148 h
    assert projection.total_h == pytest.approx(3.018148 + 2 * (student_train_s + student_eval_s) / 3600, rel=1e-6)
    assert projection.gpus == 4 and projection.unknown_jobs == 0
    # The longest chain of one seed: big's training, then the student's (it waits for its teacher), then its evaluation.
    assert projection.critical_path_h() == pytest.approx((big_train_s + student_train_s + student_eval_s) / 3600)
    assert rows[("train", "small")].job.work == 3 * 1000 + 3 * 200
    assert rows[("train", "small")].effective == pytest.approx((3 * 1000 + 3 * 200) / small_train_s)

    table = {(r["rule"], r["paper"], r.get("job")): r for r in cost.csv_rows(projection)}
    assert float(table[("train", "toy", "big")]["device_h"]) == pytest.approx(big_train_s * seeds / 3600, rel=1e-5)
    totals = [r for r in cost.csv_rows(projection) if r["rule"] == "total" and r["paper"] == "all"]
    assert float(totals[0]["device_h"]) == pytest.approx(total_h, rel=1e-5)
    ideal = [r for r in cost.csv_rows(projection) if r["rule"] == "total / 4 devices"]
    assert float(ideal[0]["device_h"]) == pytest.approx(total_h / 4, rel=1e-5)
    assert "ideal scaling" in ideal[0]["basis"]


def test_unknown_rate_is_said_and_left_out_of_the_totals(toy):
    plan = RunPlan({"toy": load_replication(toy)}, "paper")
    small, _ = toy_networks(toy)
    projection = cost.project(plan, rates_with({small: 100.0}))  # nothing known of ResNet-32
    rows = by_row(projection)
    for key in (("train", "big"), ("evaluate", "big"), ("train", "student")):  # the student's teacher is ResNet-32
        assert rows[key].seconds is None and rows[key].device_h is None, key
        assert rows[key].rate.source == "unknown"
    assert "teacher" in rows[("train", "student")].rate.detail
    known_s = (3 * 1000 / 100 + 3 * 200 / 3 / 100) + 200 / 3 / 100 + 10_000 / 3 / 100  # small, the student's eval
    assert projection.total_h == pytest.approx(known_s * 2 / 3600)
    assert projection.unknown_jobs == 3 * 2
    csv_big = next(r for r in cost.csv_rows(projection) if r["rule"] == "train" and r["job"] == "big")
    assert csv_big["device_h"] == "" and csv_big["rate"] == "" and csv_big["source"].startswith("unknown")
    text = cost.render(projection)
    assert "unknown" in text and "6 job(s) of unknown rate not counted" in text
    assert projection.gpus == 1 and "no manifest" in projection.gpus_from


def test_a_measured_run_on_the_same_device_comes_before_a_calibration(toy, tmp_path):
    """train_log.csv's images_per_s (median over epochs) of a finished run of the same network and input on a
    device of the same name; its head (num_classes) and the spec's defaults may differ."""
    results = tmp_path / "results"
    run = results / "reduced" / "other" / "r20" / "seed0"
    run.mkdir(parents=True)
    small, big = toy_networks(toy)
    spec = {**small.spec, "num_classes": 100, "extra_default": 1}
    (run / "metrics.json").write_text(json.dumps({"spec": spec, "record": {"dataset": "cifar100"},
                                                  "run": {"device_name": f" {DEVICE.lower()} ", "threads": 8}}))
    (run / "train_log.csv").write_text("epoch,epoch_s,images_per_s\n1,1,80\n2,1,200\n3,1,210\n")
    plan = RunPlan({"toy": load_replication(toy)}, "paper")
    rates = cost.Rates.from_results(DEVICE, results, plan.replications)
    rates.calibration = {DEVICE: {small.key: {"rate": 1.0}, big.key: {"rate": 50.0}}}
    rows = by_row(cost.project(plan, rates))
    assert rows[("train", "small")].rate.source == "measured"
    assert rows[("train", "small")].rate.value == 200.0
    assert rows[("train", "small")].seconds == pytest.approx(3 * 1000 / 200 + 3 * 200 / 3 / 200)
    assert rows[("train", "big")].rate.source == "calibrated"  # another spec (depth 32): not this run's
    assert cost.Rates.from_results("Another GPU", results, plan.replications).plain(small).source == "unknown"
    fashion = cost.Network.of(small.name, small.spec, "fashion-mnist")  # another input size
    assert rates.plain(fashion).source == "unknown"


def test_a_measured_search_stage_prices_the_same_search_by_its_work(tmp_path):
    """A finished search's benchmark seconds over the work its recorded recipe implies: its own rate."""
    rep = load_replication(REPO / "replications/tas")
    plan = RunPlan({"tas": rep}, "paper", only=("searched-C010-ResNet20-nokd",))
    results = tmp_path / "results"
    folder = results / "reduced" / "tas" / "search" / "tas-C010-ResNet20"
    (folder / "seed0").mkdir(parents=True)
    recipe = rep.search_recipe("tas-C010-ResNet20", "reduced")
    assert main(["recipe", "--replication", str(REPO / "replications/tas"), "--search", "tas-C010-ResNet20",
                 "--scale", "reduced", "--out", str(folder / "recipe.yaml")]) == 0
    (folder / "seed0" / "search.json").write_text(json.dumps({"run": {"device_name": DEVICE}}))
    bench = results / "reduced" / "benchmarks" / "tas" / "search" / "tas-C010-ResNet20-seed0.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\n1000.0\t0:16:40\n")
    reduced_work = recipe.weights.epochs * ((recipe.weights.train_subset or 50_000) // 2)  # its weight-half images
    rates = cost.Rates.from_results(DEVICE, results, {"tas": rep})
    row = by_row(cost.project(plan, rates))[("search", "tas-C010-ResNet20")]
    assert row.rate.source == "measured"
    assert row.rate.value == pytest.approx(reduced_work / 1000.0)
    assert row.seconds == pytest.approx(600 * 25_000 / (reduced_work / 1000.0))  # paper: 600 epochs x 25,000
    assert row.job.seeds == 3


# -- work of the real replications ---------------------------------------------------------------------
def test_paper_plan_counts_the_workflows_jobs_and_the_search_work():
    reps = {p: load_replication(REPO / "replications" / p) for p in ("tas", "autoshrink", "memnas", "proxylessnas")}
    projection = cost.project(RunPlan(reps, "paper"), cost.Rates("nowhere"))
    rows = projection.rows
    tas = [r.job for r in rows if r.job.paper == "tas"]
    # README: TAS at paper scale is 30 searches and 44 experiments x 3 seeds.
    assert sum(j.seeds for j in tas if j.rule == "search") == 30
    assert sum(j.seeds for j in tas if j.rule == "train") == 44 * 3
    jobs = {(r.job.rule, r.job.name): r.job for r in rows}
    # TAS: 600 epochs x 25,000 weight-half images, at 3.5 plain steps each.
    search = jobs[("search", "tas-C010-ResNet20")]
    assert search.work == 600 * 25_000 and search.parts[0].cost == 3.5
    # AutoShrink CNN: 28 edges, k = 10: 19 steps of 10 candidates, then 9 + 8 + ... + 1 = 235 candidates,
    # each 20 epochs x 5,000 proxy images (+ 1,000 held out at a third).
    cnn = jobs[("search", "shrinkcnn-C10")]
    assert cnn.parts[0].work == 235 * 20 * 5_000
    assert cnn.parts[1].work == 235 * 20 * 1_000 and cnn.parts[1].cost == pytest.approx(1 / 3)
    # MemNAS: 98 + 206 + 5 x 100 networks x 20 epochs x 45,000 images.
    mem = jobs[("search", "memnas-lam0.8")]
    assert mem.parts[0].work == (98 + 206 + 5 * 100) * 20 * 45_000
    # ProxylessNAS (gradient): (40 + 120) epochs x 45,000 images + 119 x floor(176 / 5) updates x 256 at 2.17.
    pxl = jobs[("search", "proxyless-mobile-C10")]
    assert pxl.parts[0].work == 160 * 45_000
    assert pxl.parts[1].work == 119 * 35 * 256 and pxl.parts[1].cost == 2.17
    latency = jobs[("search_stage", "proxyless-mobile-C10")]
    assert latency.work is None and latency.stage == "latency"
    assert all(r.rate.source == "unknown" and r.device_h is None for r in rows)
    assert projection.total_h == 0 and projection.unknown_jobs == sum(r.job.seeds for r in rows)


def test_search_counts_follow_the_methods_own_code():
    """The torch-free counts agree with the methods' code: MemNAS's round-1 candidates of a one-cell net,
    AutoShrink's RNN ops draw and shrink loop."""
    from nas_impl.methods.autoshrink.method import node_ops
    from nas_impl.methods.autoshrink.recipe import RNN_NODE_OPS
    from nas_impl.methods.autoshrink.shrink import Shrinker
    from nas_impl.methods.autoshrink.work import rnn_node_ops, shrink_candidates
    from nas_impl.methods.memnas import candidates
    from nas_impl.methods.memnas.work import memnas_candidates
    from nas_impl.models.dag import complete_dag

    rep = load_replication(REPO / "replications/memnas")
    recipe = rep.search_recipe("memnas-lam0.8", "paper")
    spec = cost.read_spec(rep.search_arch_path("memnas-lam0.8"))
    counts, _ = memnas_candidates(recipe.memnas, spec)
    assert counts[1] == len(candidates.round_candidates(spec)) == 206
    rnn = load_replication(REPO / "replications/autoshrink").search_recipe("shrinkrnn-PTB", "paper").shrink
    assert rnn_node_ops(rnn) == node_ops(rnn, RNN_NODE_OPS)
    for nodes, k, keep in ((8, 10, 0.01), (6, 3, 0.29), (4, 2, 0.5)):
        shrinker = Shrinker(complete_dag(nodes), k=k, keep_fraction=keep, seed=0)
        candidates_trained = 0
        while not shrinker.done:  # remove the last edge of the draw (keeps every edge reachable in a complete DAG)
            proposals = shrinker.propose()
            candidates_trained += len(proposals)
            shrinker.edges = [e for e in shrinker.edges if e != max(proposals)]
        steps, trained = shrink_candidates(nodes, k, keep)
        assert trained == candidates_trained and steps >= 1


def test_a_method_that_describes_no_search_work_gives_unknown_rows_that_say_so(monkeypatch):
    """Each method's work comes from its MethodInfo.search_work (nas_impl/methods/<method>/work.py); without
    one, its stages are projected as unknown, its searched nets as 'approximate' and its claim as not stated."""
    import dataclasses

    from nas_impl.cost import jobs
    from nas_impl.methods import method_info

    assert method_info("tas").search_work is not None
    bare = dataclasses.replace(method_info("tas"), search_work=None)
    monkeypatch.setattr(jobs, "method_info", lambda name: bare if name == "tas" else method_info(name))
    rep = load_replication(REPO / "replications/tas")
    plan = RunPlan({"tas": rep}, "paper", only=("searched-C010-ResNet20-nokd",))
    rows = by_row(cost.project(plan, cost.Rates("nowhere")))
    search = rows[("search", "tas-C010-ResNet20")]
    assert search.job.work is None and search.job.parts == () and search.rate.source == "unknown"
    assert "describes no search work" in search.job.basis and search.device_h is None
    assert "network: the search's base (approximate)" in rows[("train", "searched-C010-ResNet20-nokd")].job.basis
    assert search.job.claim.value is None and search.job.claim.text.startswith("not stated: no experiment")


def test_data_sizes_agree_with_the_dataset_registry():
    from nas_impl.data.registry import DATASET_INFO, TEXT_VOCABULARY

    for name, info in DATASET_INFO.items():
        size = cost.DATA_SIZES[name]
        assert (size.train, size.test, size.classes) == (info.train_size, info.test_size, info.num_classes), name
        assert size.input == "x".join(map(str, info.input_size)), name
    assert cost.DATA_SIZES["ptb"].classes == TEXT_VOCABULARY["ptb"]


def test_claimed_search_costs_come_from_published_rows_or_say_not_stated():
    shrink = cost.search_claim(load_replication(REPO / "replications/autoshrink"), "shrinkcnn-C10")
    assert shrink.value == 1.5 and "TITAN Xp" in shrink.text
    proxyless = load_replication(REPO / "replications/proxylessnas")
    assert cost.search_claim(proxyless, "proxyless-R-mobile-ImageNet").value == 200
    gpu = cost.search_claim(proxyless, "proxyless-gpu-ImageNet")
    assert gpu.value is None and gpu.text.startswith("not stated")
    for paper, search in (("tas", "tas-C010-ResNet20"), ("autoslim", "autoslim-MBv2-C10"), ("memnas", "memnas-lam0.8")):
        claim = cost.search_claim(load_replication(REPO / "replications" / paper), search)
        assert claim.value is None and claim.text.startswith("not stated") and "../shared/reference" in claim.text


# -- the verb ------------------------------------------------------------------------------------------
def one_line_error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nasrepro cost: error: ")
    return err


def test_bad_scale_paper_or_device_count_is_one_line(capsys):
    assert "did you mean 'paper'" in one_line_error(capsys, ["cost", "--scale", "papr"])
    bad_paper = ["cost", "--scale", "paper", "--papers", "tas,autoslimm"]
    assert "did you mean 'autoslim'" in one_line_error(capsys, bad_paper)
    assert "--gpus 0" in one_line_error(capsys, ["cost", "--scale", "paper", "--gpus", "0"])


def test_cli_prints_the_table_and_writes_the_csv_without_torch(toy, tmp_path):
    results = tmp_path / "results"
    small, big = toy_networks(toy)
    (results / "cost").mkdir(parents=True)
    (results / "cost" / "calibration.json").write_text(json.dumps({
        "format": cost.CALIBRATION_FORMAT, "devices": {DEVICE: {small.key: {"rate": 100.0}, big.key: {"rate": 50.0}}}}))
    probe = ("import sys, json\nfrom nas_impl.cli import main\ncode = main(sys.argv[1:])\n"
             "print('HEAVY=' + json.dumps('torch' in sys.modules), file=sys.stderr)\nsys.exit(code)\n")
    out = tmp_path / "cost.csv"
    done = subprocess.run([sys.executable, "-c", probe, "cost", "--scale", "paper", "--replications", str(toy.parent),
                           "--results", str(results), "--device", DEVICE, "--gpus", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("HEAVY=false")
    assert "Projected device-hours, scale paper" in done.stdout and "calibrated" in done.stdout
    assert "on 2 device(s), ideal scaling" in done.stdout
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == cost.COLUMNS
    big_train = next(r for r in rows if r["rule"] == "train" and r["job"] == "big")
    assert float(big_train["device_h"]) == pytest.approx(2 * (5 * 50_000 / 50 + 5 * 10_000 / 3 / 50) / 3600, rel=1e-5)
    assert big_train["seeds"] == "2" and big_train["work"] == str(5 * 60_000)


def test_calibrate_times_one_small_network_on_cpu_and_caches_it(toy, tmp_path, capsys):
    from nas_impl.commands.cost import cpu_name

    results = tmp_path / "results"
    code = main(["cost", "--scale", "smoke", "--replications", str(toy.parent), "--results", str(results),
                 "--device", "cpu", "--calibrate", "--max-networks", "1", "--steps", "1", "--calibrate-batch", "2",
                 "--threads", "1", "--out", str(tmp_path / "smoke.csv")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    cache = json.loads((results / "cost" / "calibration.json").read_text())
    entries = cache["devices"][cpu_name()]
    assert len(entries) == 1
    (entry,) = entries.values()
    assert entry["rate"] > 0 and entry["batch"] == 2 and entry["steps"] == 1 and entry["input"] == "1x28x28"
    assert "calibrated" in captured.out and "calibrate: stopped after 1 network(s)" in captured.err
    summary = json.loads(captured.out[captured.out.index("\n{") + 1:])
    assert summary["calibrated_now"] == 1 and summary["device"] == cpu_name()
