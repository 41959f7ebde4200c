"""The workflow on a real SLURM cluster: one node on this machine (tests/cluster/slurm_cluster.py:
Debian's slurmctld, slurmd and munge, installed when missing; skipped only when they cannot be),
driven through `snakemake --profile workflows/profiles/slurm-test`.

- A tiny replication chain (ResNet-20 of the baselines at smoke scale, one epoch on 256 images)
  runs job by job through sbatch: slurmctld lists every job as COMPLETED on this node, and the
  results equal those of a local run of the same chain started meanwhile (same tables, verdicts,
  architecture metrics, accuracies and weights: both runs pin one intra-op thread, so on the same
  CPU they are bit-identical; only the timings differ).
- A training job (3 epochs) is cancelled with scancel once its first epoch is checkpointed, as a
  preemption would end it: Snakemake's retry (the profile's `retries: 1`) submits it again, the job
  resumes from checkpoint.pt (no epoch is run twice) and ends with the weights of an uninterrupted
  run of the same config.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.workflow.test_resume import rows

from .slurm_cluster import SlurmCluster, install_packages

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILE = REPO / "workflows/profiles/slurm-test"
TINY = ["scale=smoke", "papers=[baselines]", "experiments=[resnet20-cifar10]",
        "recipe_overrides={epochs: 1, train_subset: 256, test_subset: 200, batch_size: 64}"]
EPOCHS = 3  # the cancelled training: epochs of a few seconds (2048 images)
LONGER = ["scale=smoke", "papers=[baselines]", "experiments=[resnet20-cifar10]",
          f"recipe_overrides={{epochs: {EPOCHS}, train_subset: 2048, test_subset: 200, batch_size: 64}}"]
RUN = "results/smoke/baselines/resnet20-cifar10/seed0"
TRAIN_LOG = "results/smoke/logs/baselines/train/resnet20-cifar10-seed0.log"
# the rules of the chain, each one SLURM job (`all` is the target and stays local)
SLURM_RULES = {"prepare_data", "recipe", "reference_archs_baselines", "train", "evaluate", "compare", "plot", "report"}
TIMING_COLUMNS = {"epoch_s", "images_per_s"}
TIMEOUT_S = 600
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


@pytest.fixture(scope="module")
def cluster():
    reason = install_packages()
    if reason:
        pytest.skip(f"no SLURM test cluster: {reason}")
    slurm = SlurmCluster()
    try:
        yield slurm.start()
    finally:  # also when start() or a test failed: the daemons it started, and nothing else
        slurm.stop()


def snakemake_command(workdir: Path, config: list[str], *extra: str) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *extra,
            "--config", *config]


def start(command: list[str], workdir: Path, env: dict[str, str], name: str) -> subprocess.Popen:
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
    log = open(workdir / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    return proc


def finish(proc: subprocess.Popen, workdir: Path, name: str, cluster: SlurmCluster | None = None) -> str:
    try:
        code = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    output = (workdir / f"{name}.log").read_text()
    if code != 0:
        logs = [f"--- {p}\n{p.read_text()[-2000:]}" for pattern in ("results/smoke/logs/**/*.log",
                                                                   ".snakemake/slurm_logs/**/*.log")
                for p in sorted(workdir.glob(pattern))]
        daemons = cluster.logs() if cluster else ""
        raise AssertionError(f"snakemake ({name}) exited with {code} in {workdir}:\n{output[-4000:]}\n"
                             + "\n".join(logs) + f"\n{daemons}")
    return output


def submissions(output: str) -> list[tuple[str, str, Path]]:
    """(SLURM job id, rule, SLURM log) of every job Snakemake submitted, in order."""
    found = []
    for job_id, log in SUBMITTED.findall(output):
        rule = re.search(r"/slurm_logs/rule_([^/]+)/", log).group(1)
        found.append((job_id, rule, Path(log)))
    return found


def without_timings(table: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in table]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def differing_tensors(a: Path, b: Path) -> list[str]:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    return [name for name in wa if not torch.equal(wa[name], wb[name])]


@pytest.fixture(scope="module")
def chain(cluster, tmp_path_factory):
    """The tiny chain through SLURM, and the same chain run locally meanwhile."""
    slurm_dir, local_dir = tmp_path_factory.mktemp("slurm-chain"), tmp_path_factory.mktemp("local-chain")
    local = start(snakemake_command(local_dir, TINY, "--cores", "2"), local_dir, cluster.env, "snakemake")
    try:
        through_slurm = start(snakemake_command(slurm_dir, TINY, "--profile", str(PROFILE)), slurm_dir, cluster.env,
                              "snakemake")
        output = finish(through_slurm, slurm_dir, "snakemake", cluster)
    finally:
        finish(local, local_dir, "snakemake")
    return slurm_dir, local_dir, output


def test_every_job_of_the_chain_ran_through_sbatch_on_the_node(cluster, chain):
    slurm_dir, _, output = chain
    jobs = submissions(output)
    assert {rule for _, rule, _ in jobs} == SLURM_RULES, output[-3000:]
    assert "localrule" not in output.replace("localrule all:", ""), "a rule of the chain ran outside SLURM"
    known = {job["id"]: job for job in cluster.jobs()}
    for job_id, rule, log in jobs:
        job = known[job_id]  # slurmctld still lists finished jobs (MinJobAge)
        assert job["state"] == "COMPLETED" and job["nodes"] == cluster.node, job
        assert job["comment"].startswith(f"rule_{rule}"), job
        # the plugin's batch log: the job's own Snakemake (executor slurm-jobstep) ran the rule there
        assert log.is_file() and log.resolve().is_relative_to((slurm_dir / ".snakemake/slurm_logs").resolve()), log
        assert f"(Rule: {rule})" in log.read_text(), log.read_text()[-2000:]
    assert len(jobs) == 14  # 1 + 1 + 1 + train + evaluate + 4 compare + 4 plot + report


def test_results_equal_a_local_run(chain):
    slurm_dir, local_dir, _ = chain
    slurm, local = slurm_dir / "results/smoke", local_dir / "results/smoke"
    tables = sorted(p.relative_to(local) for p in local.glob("baselines/tables/*.csv"))
    assert len(tables) == 4
    for name in [*tables, Path("scorecard.csv")]:  # verdicts, published and reproduced values
        assert (slurm / name).read_text() == (local / name).read_text(), name
    for name in ("arch_metrics.json", "eval.json"):
        assert json.loads((slurm / RUN.removeprefix("results/smoke/") / name).read_text()) == \
            json.loads((local / RUN.removeprefix("results/smoke/") / name).read_text()), name
    run_s, run_l = slurm_dir / RUN, local_dir / RUN
    assert without_timings(rows(run_s / "train_log.csv")) == without_timings(rows(run_l / "train_log.csv"))
    ms, ml = (json.loads((d / "metrics.json").read_text()) for d in (run_s, run_l))
    assert {k: v for k, v in ms.items() if "top" in k} == {k: v for k, v in ml.items() if "top" in k}
    assert not differing_tensors(run_s / "checkpoint.pt", run_l / "checkpoint.pt")
    table = rows(slurm / "baselines/tables/cifar10-resnets.csv")
    verdicts = {r["metric"]: r["verdict"] for r in table if r["model"] == "ResNet-20"}
    assert verdicts["macs"] == verdicts["params"] == "reproduced"


def test_cancelled_training_is_retried_and_resumes_from_its_checkpoint(cluster, tmp_path):
    """scancel during epoch 2, as a preemption ends a job: the retry continues from epoch 1's checkpoint."""
    victim_dir, reference_dir = tmp_path / "cancelled", tmp_path / "uninterrupted"
    victim_dir.mkdir()
    reference_dir.mkdir()
    target = ["--", f"{RUN}/metrics.json"]
    victim = start(snakemake_command(victim_dir, LONGER, "--profile", str(PROFILE)) + target, victim_dir,
                   cluster.env, "snakemake")
    reference = start(snakemake_command(reference_dir, LONGER, "--cores", "2") + target, reference_dir,
                      cluster.env, "snakemake")
    run = victim_dir / RUN
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (run / "checkpoint.pt").exists():  # epoch 1 done, epoch 2 running
            assert victim.poll() is None, (victim_dir / "snakemake.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "epoch 1 was not checkpointed in time"
            time.sleep(0.1)
        training = [j for j in cluster.jobs() if j["comment"].startswith("rule_train") and j["state"] == "RUNNING"]
        assert len(training) == 1, cluster.jobs()
        cancelled = training[0]["id"]
        cluster.run("scancel", cancelled)
        epochs_before = rows(run / "train_log.csv")
        assert not (run / "metrics.json").exists() and len(epochs_before) < EPOCHS, (
            f"the cancel landed after training finished ({len(epochs_before)} of {EPOCHS} epochs logged): the test "
            "proves nothing; make its epochs longer (train_subset)")
        output = finish(victim, victim_dir, "snakemake", cluster)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
        finish(reference, reference_dir, "snakemake")

    trains = [(job_id, log) for job_id, rule, log in submissions(output) if rule == "train"]
    assert [job_id for job_id, _ in trains][:1] == [cancelled] and len(trains) == 2, output[-3000:]
    states = {job["id"]: job["state"] for job in cluster.jobs()}
    assert states[cancelled] == "CANCELLED" and states[trains[1][0]] == "COMPLETED", states
    first, second = (log.read_text() for _, log in trains)  # the plugin's batch logs of the two jobs
    assert "--attempt 1" in first and "CANCELLED" in first, first[-2000:]  # slurmstepd notes the cancel
    assert "--attempt 2" in second, second[-2000:]

    after = rows(run / "train_log.csv")
    assert [r["epoch"] for r in after] == [str(e) for e in range(1, EPOCHS + 1)]
    # the epochs logged when the job was cancelled were not run again (their timings would differ)
    assert after[:len(epochs_before)] == epochs_before, "epochs done before the cancel were run again"
    assert "resuming from checkpoint.pt" in (victim_dir / TRAIN_LOG).read_text(), (victim_dir / TRAIN_LOG).read_text()
    assert without_timings(after) == without_timings(rows(reference_dir / RUN / "train_log.csv"))
    assert not differing_tensors(run / "checkpoint.pt", reference_dir / RUN / "checkpoint.pt"), \
        "the resumed weights differ from an uninterrupted run's"
