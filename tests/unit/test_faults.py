"""The fault matrix: bad input and faults a user meets, each ending in one clear line.

Every case runs `nasrepro` in process and checks what a user sees: the exit status (2 for a
mistake, 3 for a bug, 130 for an interruption), exactly one line on stderr,
`nasrepro <verb>: error: ...`, naming the file, option or key at fault; no traceback; and no
result left where one would be (the case's result files, and no `.tmp` anywhere).

Then: a checkpoint carrying a pickled payload, through every verb that loads one (refused, the
payload never runs); real SIGINT/SIGTERM to a real training process (exit 130, a valid checkpoint
that resumes); orphaned temporaries; and results that do not depend on the cores a run is given.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from nas_impl.cli import main
from nas_impl.data.fashion_mnist import FILES as FMNIST_FILES
from nas_impl.data.fashion_mnist import SYSTEM_DIR as FMNIST_SYSTEM_DIR
from nas_impl.training.checkpoint import FORMAT

ROOT = Path(__file__).resolve().parents[2]
RECIPE = {"epochs": 1, "batch_size": 64, "lr": 0.05, "train_subset": 128, "test_subset": 64}
ARCH = {"family": "resnet-cifar", "depth": 8}
TAS_RECIPE = {"epochs": 1, "batch_size": 32, "lr": 0.05, "train_subset": 128, "target_ratio": 0.5}
SLIM_RECIPE = {"epochs": 1, "batch_size": 32, "lr": 0.05, "train_subset": 200, "targets": ["0.5x"], "divisions": 4,
               "width_min": 0.25, "slim_images": 40, "slim_batch_size": 20, "calibration_batches": 1}


@dataclass
class Fault:
    argv: list[str]
    names: tuple[str, ...]  # what the message must name (file, option, key) and a phrase of the fix
    code: int = 2
    absent: tuple[Path, ...] = ()  # results that must not exist afterwards


class Workspace:
    """A case's folder, with the tiny files a case starts from."""

    def __init__(self, root: Path, trained: Path, monkeypatch: pytest.MonkeyPatch):
        self.root, self.trained, self.monkeypatch = root, trained, monkeypatch
        self.mounted: list[Path] = []

    def write(self, name: str, content: str | bytes | dict) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = yaml.safe_dump(content)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return path

    def recipe(self, **changes) -> Path:
        return self.write("recipe.yaml", {**RECIPE, **changes})

    def train(self, *extra: str, recipe: Path | None = None, arch: Path | str | None = None,
              out: Path | str | None = None, dataset: str = "fashion-mnist") -> list[str]:
        return ["train", "--arch", str(arch or self.write("arch.yaml", ARCH)), "--recipe", str(recipe or self.recipe()),
                "--dataset", dataset, "--out", str(out or self.root / "run"), "--device", "cpu", *extra]

    def run_copy(self) -> Path:
        return Path(shutil.copytree(self.trained, self.root / "run"))

    def checkpoint(self, state: dict, name: str = "checkpoint.pt") -> Path:
        path = self.root / name
        torch.save({"format": FORMAT, **state}, path)
        return path

    def trained_state(self) -> dict:
        return torch.load(self.trained / "checkpoint.pt", weights_only=True)

    def mount(self, name: str, options: str) -> Path:
        """A small tmpfs (root only): a full disk or a read-only folder that root cannot write either."""
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        path = self.root / name
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
        self.mounted.append(path)
        return path


FAULTS: dict[str, Callable[[Workspace], Fault]] = {}


def fault(func: Callable[[Workspace], Fault]) -> Callable[[Workspace], Fault]:
    FAULTS[func.__name__] = func
    return func


# -- the run folder and the file system --------------------------------------------------------
@fault
def out_is_a_file(ws):
    taken = ws.write("taken", "x")
    return Fault(ws.train(out=taken), ("--out", str(taken), "choose another --out"))


@fault
def out_below_a_file(ws):
    out = ws.write("taken", "x") / "run"
    return Fault(ws.train(out=out), ("--out", str(out), "a part of the path is a file"))


@fault
def out_read_only(ws):
    out = ws.mount("ro", "ro,size=1m") / "run"
    return Fault(ws.train(out=out), ("--out", str(out), "read-only file system"))


@fault
def disk_full_during_checkpoint(ws):
    out = ws.mount("small", "size=96k")  # room for the probe and the log, not for ResNet-8's checkpoint
    return Fault(ws.train(out=out), (str(out / "checkpoint.pt"), "no space left"), absent=(out / "metrics.json",))


@fault
def summary_below_a_file(ws):
    summary = ws.write("taken", "x") / "summary.json"
    return Fault(["prepare-data", "--dataset", "fashion-mnist", "--out", str(summary)],
                 (str(summary), "a file of that name is in the way"), absent=(summary,))


# -- architecture and recipe files ---------------------------------------------------------------
@fault
def recipe_missing(ws):
    recipe = ws.root / "nope.yaml"
    return Fault(ws.train(recipe=recipe), (str(recipe), "does not exist"), absent=(ws.root / "run",))


@fault
def recipe_is_a_folder(ws):
    folder = ws.root / "recipes"
    folder.mkdir()
    return Fault(ws.train(recipe=folder), (str(folder),))


@fault
def recipe_not_utf8(ws):
    recipe = ws.write("recipe.yaml", b"epochs: 1\nlr: 0.1 # \xe9t\xe9\n")
    return Fault(ws.train(recipe=recipe), (str(recipe), "UTF-8"))


@fault
def recipe_not_yaml(ws):
    recipe = ws.write("recipe.yaml", "epochs: [1\nlr: 0.1\n")
    return Fault(ws.train(recipe=recipe), (str(recipe), "YAML"))


@fault
def recipe_not_a_mapping(ws):
    recipe = ws.write("recipe.yaml", "- epochs\n- lr\n")
    return Fault(ws.train(recipe=recipe), (str(recipe), "mapping"))


@fault
def recipe_key_typo(ws):
    return Fault(ws.train(recipe=ws.recipe(epoch=1)), ("recipe.yaml", "'epoch'", "epochs"))


@fault
def weight_decay_negative(ws):
    return Fault(ws.train(recipe=ws.recipe(weight_decay=-1.0)), ("recipe.yaml", "weight_decay"))


@fault
def weight_decay_yaml11_string(ws):
    recipe = ws.write("recipe.yaml", "epochs: 1\nlr: 0.05\nweight_decay: 5e-4\n")
    return Fault(ws.train(recipe=recipe), ("recipe.yaml", "weight_decay", "5.0e-4"))


@fault
def momentum_negative(ws):
    return Fault(ws.train(recipe=ws.recipe(momentum=-0.9)), ("recipe.yaml", "momentum"))


@fault
def eval_batch_size_zero(ws):
    return Fault(ws.train(recipe=ws.recipe(eval_batch_size=0)), ("recipe.yaml", "eval_batch_size"))


@fault
def train_subset_negative(ws):
    return Fault(ws.train(recipe=ws.recipe(train_subset=-5)), ("recipe.yaml", "train_subset"))


@fault
def arch_not_utf8(ws):
    arch = ws.write("arch.yaml", b"family: resnet-cifar\ndepth: 8 # \xff\n")
    return Fault(ws.train(arch=arch), (str(arch), "UTF-8"))


@fault
def arch_unknown_family(ws):
    arch = ws.write("arch.yaml", {"family": "resnett-cifar", "depth": 8})
    return Fault(ws.train(arch=arch), ("resnett-cifar", "resnet-cifar"))


@fault
def arch_unknown_key(ws):
    arch = ws.write("arch.yaml", {**ARCH, "dept": 20})
    return Fault(ws.train(arch=arch), ("dept",))


@fault
def arch_wrong_channels_for_input(ws):
    arch = ws.write("arch.yaml", {**ARCH, "in_channels": 3})
    return Fault(["metrics", str(arch), "--input-size", "1x32x32"], (str(arch), "1x32x32"))


@fault
def input_size_zero(ws):
    return Fault(["metrics", "resnet20-cifar", "--input-size", "3x0x0"], ("--input-size", "3x0x0"))


# -- options ---------------------------------------------------------------------------------------
@fault
def set_value_not_a_number(ws):
    out = ws.root / "r.yaml"
    return Fault(["recipe", "--replication", str(ROOT / "replications/baselines"), "--name", "cifar",
                  "--scale", "smoke", "--set", "epochs=ten", "--out", str(out)], ("--set", "epochs"), absent=(out,))


@fault
def set_without_equals(ws):
    out = ws.root / "r.yaml"
    return Fault(["recipe", "--replication", str(ROOT / "replications/baselines"), "--name", "cifar",
                  "--scale", "smoke", "--set", "epochs", "--out", str(out)], ("--set 'epochs'", "key=value"),
                 absent=(out,))


@fault
def replication_key_typo(ws):
    rep = Path(shutil.copytree(ROOT / "replications/baselines", ws.root / "baselines"))
    manifest = yaml.safe_load((rep / "replication.yaml").read_text())
    manifest["tolerances"]["acuracy"] = 1.0
    (rep / "replication.yaml").write_text(yaml.safe_dump(manifest))
    out = ws.root / "r.yaml"
    return Fault(["recipe", "--replication", str(rep), "--name", "cifar", "--scale", "smoke", "--out", str(out)],
                 ("replication.yaml", "'acuracy'", "accuracy"), absent=(out,))


@fault
def threads_zero(ws):
    return Fault(ws.train("--threads", "0"), ("--threads",), absent=(ws.root / "run" / "metrics.json",))


@fault
def teacher_without_distill(ws):
    return Fault(ws.train("--teacher", str(ws.trained / "checkpoint.pt")), ("'distill'",))


# -- datasets --------------------------------------------------------------------------------------
@fault
def dataset_unknown(ws):
    return Fault(ws.train(dataset="cifar11"), ("cifar11", "cifar10"))


@fault
def fashion_mnist_folder_unusable(ws):
    (ws.root / "data" / "fashion-mnist").mkdir(parents=True)
    return Fault(ws.train("--data-root", str(ws.root / "data")), (str(ws.root / "data" / "fashion-mnist"),))


@fault
def fashion_mnist_file_corrupt(ws):
    folder = ws.root / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    source = next(d for d in (ROOT / "data" / "fashion-mnist", FMNIST_SYSTEM_DIR) if (d / FMNIST_FILES[0]).is_file())
    for name in FMNIST_FILES:
        shutil.copy(source / name, folder / name)
    victim = folder / FMNIST_FILES[0]
    victim.write_bytes(victim.read_bytes()[:-100])
    return Fault(ws.train("--data-root", str(ws.root / "data")), (FMNIST_FILES[0],))


@fault
def ptb_absent(ws):
    return Fault(["prepare-data", "--dataset", "ptb", "--data-root", str(ws.root)], (str(ws.root / "ptb"),))


# -- checkpoints -----------------------------------------------------------------------------------
def evaluate(path: Path, *extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", str(path), "--device", "cpu", "--out", str(path.parent / "eval.json"), *extra]


@fault
def checkpoint_absent(ws):
    path = ws.root / "run" / "checkpoint.pt"
    return Fault(evaluate(path), (str(path), "train the model first"), absent=(path.parent / "eval.json",))


@fault
def checkpoint_truncated(ws):
    path = ws.write("checkpoint.pt", (ws.trained / "checkpoint.pt").read_bytes()[:4096])
    return Fault(evaluate(path), (str(path), "cannot be read"), absent=(ws.root / "eval.json",))


@fault
def checkpoint_not_a_pytorch_file(ws):
    path = ws.write("checkpoint.pt", b"not a checkpoint")
    return Fault(evaluate(path), (str(path), "cannot be read"), absent=(ws.root / "eval.json",))


@fault
def checkpoint_of_another_program(ws):
    path = ws.root / "checkpoint.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    return Fault(evaluate(path), (str(path), "not a nas-repro checkpoint"), absent=(ws.root / "eval.json",))


@fault
def checkpoint_missing_keys(ws):
    path = ws.checkpoint({"model": ws.trained_state()["model"]})
    return Fault(evaluate(path), (str(path), "lacks", "recipe"), absent=(ws.root / "eval.json",))


@fault
def checkpoint_weights_of_another_network(ws):
    state = ws.trained_state()
    path = ws.checkpoint({**state, "spec": {**state["spec"], "depth": 14}})
    return Fault(evaluate(path), (str(path), "do not fit"), absent=(ws.root / "eval.json",))


@fault
def checkpoint_one_channel_on_three_channel_data(ws):
    shared = Path(os.environ.get("NASREPRO_SHARED", ROOT.parent / "shared")) / "data"
    if not (shared / "cifar10_jpg").is_dir():
        pytest.skip(f"the shared CIFAR-10 copy is not at {shared}")
    path = ws.run_copy() / "checkpoint.pt"
    return Fault(evaluate(path, "--dataset", "cifar10-jpg", "--data-root", str(shared)),
                 (str(path), "cifar10-jpg"), absent=(path.parent / "eval.json",))


@fault
def resume_with_another_recipe(ws):
    run = ws.run_copy()
    (run / "metrics.json").unlink()
    return Fault(ws.train("--resume", recipe=ws.recipe(lr=0.1)), (str(run / "checkpoint.pt"), "cannot resume"))


# -- failures during a run -----------------------------------------------------------------------
@fault
def nan_in_first_epoch_replaces_a_finished_run(ws):
    run = ws.run_copy()  # a finished run (seed 0) is in the folder; this rerun (seed 1) diverges
    return Fault(ws.train("--seed", "1", recipe=ws.recipe(lr=1e30)), ("NaN", "no checkpoint was written"),
                 absent=(run / "metrics.json", run / "checkpoint.pt"))


@fault
def out_of_memory(ws):
    def oom(self, epoch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    ws.monkeypatch.setattr("nas_impl.training.trainer.Trainer.train_epoch", oom)
    return Fault(ws.train(), ("out of memory", "batch_size"), absent=(ws.root / "run" / "metrics.json",))


@fault
def bug_inside_the_code(ws):
    def bug(self, epoch):
        raise ZeroDivisionError("division by zero")

    ws.monkeypatch.setattr("nas_impl.training.trainer.Trainer.train_epoch", bug)
    return Fault(ws.train(), ("internal error", "ZeroDivisionError", "NASREPRO_DEBUG=1"), code=3,
                 absent=(ws.root / "run" / "metrics.json",))


@fault
def ctrl_c_in_second_epoch(ws):
    from nas_impl.training.trainer import Trainer

    real = Trainer.train_epoch

    def interrupted_at_epoch_2(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch)

    ws.monkeypatch.setattr(Trainer, "train_epoch", interrupted_at_epoch_2)
    checkpoint = ws.root / "run" / "checkpoint.pt"
    return Fault(ws.train(recipe=ws.recipe(epochs=2)), (str(checkpoint), "(epoch 1)", "--resume"), code=130,
                 absent=(ws.root / "run" / "metrics.json",))


@fault
def search_stage_unknown(ws):
    recipe = ws.write("slim.yaml", SLIM_RECIPE)
    return Fault(["search", "--method", "autoslim", "--stage", "search", "--arch", "resnet20-cifar", "--recipe",
                  str(recipe), "--dataset", "fashion-mnist", "--out", str(ws.root / "s"), "--device", "cpu"],
                 ("--stage", "supernet, slim"))


@fault
def slim_without_supernet(ws):
    recipe = ws.write("slim.yaml", SLIM_RECIPE)
    out = ws.root / "s"
    return Fault(["search", "--method", "autoslim", "--stage", "slim", "--arch", "resnet20-cifar", "--recipe",
                  str(recipe), "--dataset", "fashion-mnist", "--out", str(out), "--device", "cpu"],
                 ("supernet",), absent=(out / "search.json", out / "arch.yaml"))


@fault
def tas_target_out_of_range(ws):
    recipe = ws.write("tas.yaml", {**TAS_RECIPE, "target_ratio": 1.5})
    out = ws.root / "s"
    return Fault(["search", "--method", "tas", "--arch", "resnet20-cifar", "--recipe", str(recipe), "--dataset",
                  "fashion-mnist", "--out", str(out), "--device", "cpu"], (str(recipe), "target_ratio"),
                 absent=(out / "arch.yaml",))


# -- the matrix --------------------------------------------------------------------------------------
def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 1-epoch run (checkpoint.pt, metrics.json) the checkpoint cases start from."""
    root = tmp_path_factory.mktemp("trained")
    (root / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    (root / "arch.yaml").write_text(yaml.safe_dump(ARCH))
    assert main(["train", "--arch", str(root / "arch.yaml"), "--recipe", str(root / "recipe.yaml"), "--dataset",
                 "fashion-mnist", "--out", str(root / "run"), "--device", "cpu"]) == 0
    return root / "run"


@pytest.fixture
def workspace(tmp_path, trained, monkeypatch):
    threads = torch.get_num_threads()
    ws = Workspace(tmp_path, trained, monkeypatch)
    yield ws
    torch.set_num_threads(threads)
    for path in ws.mounted:
        subprocess.run(["umount", str(path)], check=False)


def test_the_matrix_has_at_least_30_kinds():
    assert len(FAULTS) >= 30


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_gives_one_clear_line(name, workspace, capsys):
    case = FAULTS[name](workspace)
    capsys.readouterr()
    code = main(case.argv)
    out, err = capsys.readouterr()
    verb = case.argv[0]
    assert code == case.code, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nasrepro {verb}: error: "), err
    assert "Traceback" not in err and out == ""
    missing = [n for n in case.names if n not in err]
    assert not missing, f"the message does not name {missing}: {err}"
    assert not [p for p in case.absent if p.exists()], f"left behind: {[p for p in case.absent if p.exists()]}"
    assert not tmp_files(workspace.root), tmp_files(workspace.root)


# -- a checkpoint that carries code ------------------------------------------------------------
class Payload:
    """Unpickling it would run `touch <marker>`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(path: Path, marker: Path, base: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**(base or {"format": FORMAT}), "payload": Payload(marker)}, path)
    return path


def _malicious_evaluate(ws, marker):
    return ["evaluate", "--checkpoint", str(plant(ws.root / "checkpoint.pt", marker)), "--device", "cpu"]


def _malicious_teacher(ws, marker):
    recipe = ws.recipe(distill={"temperature": 4.0, "alpha": 0.9})
    return ws.train("--teacher", str(plant(ws.root / "teacher.pt", marker)), recipe=recipe)


def _malicious_resume(ws, marker):
    plant(ws.root / "run" / "checkpoint.pt", marker, ws.trained_state())  # a real run's state, plus the payload
    return ws.train("--resume")


def _search(method: str, recipe: dict, *extra: str):
    def argv(ws, marker):
        plant(ws.root / "s" / "search_checkpoint.pt", marker)
        return ["search", "--method", method, "--arch", str(ws.write("arch.yaml", ARCH)), "--recipe",
                str(ws.write("search.yaml", recipe)), "--dataset", "fashion-mnist", "--out", str(ws.root / "s"),
                "--device", "cpu", "--resume", *extra]

    return argv


def _malicious_supernet(ws, marker):
    plant(ws.root / "s" / "supernet.pt", marker)
    return ["search", "--method", "autoslim", "--stage", "slim", "--arch", str(ws.write("arch.yaml", ARCH)),
            "--recipe", str(ws.write("search.yaml", SLIM_RECIPE)), "--dataset", "fashion-mnist", "--out",
            str(ws.root / "s"), "--device", "cpu"]


MALICIOUS = {
    "evaluate --checkpoint": _malicious_evaluate,
    "train --teacher": _malicious_teacher,
    "train --resume": _malicious_resume,
    "search tas --resume": _search("tas", TAS_RECIPE),
    "search autoslim supernet --resume": _search("autoslim", SLIM_RECIPE, "--stage", "supernet"),
    "search autoslim slim (supernet.pt)": _malicious_supernet,
}


@pytest.mark.parametrize("verb", sorted(MALICIOUS))
def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(verb, workspace, capsys):
    marker = workspace.root / "payload-ran"
    assert not marker.exists()
    torch.save({"x": Payload(marker)}, workspace.root / "probe.pt")  # the payload works when unpickled unsafely
    torch.load(workspace.root / "probe.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    argv = MALICIOUS[verb](workspace, marker)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint's payload ran"
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "was refused" in err and "posix.system" in err, err


# -- orphaned temporaries ----------------------------------------------------------------------
def test_a_run_removes_the_temporaries_a_kill_left(workspace, capsys):
    run = workspace.run_copy()
    orphans = [run / ".checkpoint.pt.k1ll3d.tmp", run / ".metrics.json.x.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    assert main(workspace.train("--resume")) == 0, capsys.readouterr().err  # finished: nothing left to train
    assert not [p for p in orphans if p.exists()] and (run / "metrics.json").is_file()


# -- real signals ------------------------------------------------------------------------------------
def _default_sigint() -> None:
    # A shell without job control starts background commands (`./.ci/run &`) with SIGINT ignored, and
    # Python keeps an inherited SIG_IGN: give the child the default a user's Ctrl-C meets.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def nasrepro(*argv: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen([str(Path(sys.executable).parent / "nasrepro"), *argv], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_with_130_and_a_checkpoint_that_resumes(signum, workspace):
    # 4096 images an epoch leave seconds between the first log row and the end, even on a loaded machine.
    argv = workspace.train("--threads", "1", recipe=workspace.recipe(epochs=4, train_subset=4096))
    run = workspace.root / "run"
    proc = nasrepro(*argv)
    deadline = time.monotonic() + 300
    while not (run / "train_log.csv").is_file():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert len(err.splitlines()) == 1 and "interrupted; the last complete checkpoint is" in err, err
    assert "Traceback" not in err and not (run / "metrics.json").exists() and not tmp_files(run)
    epoch = torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]
    assert f"(epoch {epoch})" in err and 1 <= epoch < 4
    resumed = nasrepro(*argv, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4


# -- threads ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pinned_threads_make_results_independent_of_the_cores_given(workspace):
    """The workflow passes --threads to every job: one core or all of them, the weights are the same."""
    if not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs taskset and two cores")
    recipe = workspace.recipe(train_subset=512)
    runs = {}
    for name, prefix in {"one-core": ["taskset", "-c", "0"], "all-cores": []}.items():
        out = workspace.root / name
        argv = workspace.train("--threads", "2", recipe=recipe, out=out)
        env = {**os.environ, "OMP_NUM_THREADS": "1" if prefix else str(len(os.sched_getaffinity(0)))}
        subprocess.run([*prefix, str(Path(sys.executable).parent / "nasrepro"), *argv], env=env, check=True,
                       capture_output=True, timeout=300)
        runs[name] = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    different = [k for k in runs["one-core"] if not torch.equal(runs["one-core"][k], runs["all-cores"][k])]
    assert not different, different


def test_resuming_with_another_thread_count_warns(workspace, capsys):
    run = workspace.run_copy()
    (run / "metrics.json").unlink()
    state = workspace.trained_state()
    torch.save({**state, "epoch": 0, "history": [], "threads": torch.get_num_threads() + 1}, run / "checkpoint.pt")
    assert main(workspace.train("--resume")) == 0
    err = capsys.readouterr().err
    assert f"was written with {torch.get_num_threads() + 1} threads" in err and "--threads" in err, err

