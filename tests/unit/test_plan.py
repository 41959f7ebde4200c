"""nas_impl.plan: the workflow's config checks (one line naming the key) and the resume guard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas_impl import plan

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflows/schemas/config.schema.yaml").read_text())
DEFAULTS = yaml.safe_load((REPO / "workflows/config.yaml").read_text())


def checked(**overrides):
    return plan.check_schema({**DEFAULTS, **overrides}, SCHEMA)


def error(**overrides) -> str:
    with pytest.raises(plan.ConfigError) as err:
        checked(**overrides)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_plan_does_not_import_torch():
    code = "import sys, nas_impl.plan; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_pass_and_are_filled():
    config = checked()
    assert config["threads"] is None and config["seeds"] == []
    assert plan.check_schema({"scale": "paper"}, SCHEMA)["recipe_overrides"] == {}


@pytest.mark.parametrize("seeds, expected", [(["1"], [1]), (["0", "2"], [0, 2]), ([3], [3]), ("4", [4]), ([], [])])
def test_integer_strings_of_seeds_become_integers(seeds, expected):
    assert checked(seeds=seeds)["seeds"] == expected


@pytest.mark.parametrize("threads, expected", [("null", None), ("None", None), ("", None), (None, None),
                                               ("4", 4), (2, 2)])
def test_threads_accepts_null_and_integer_strings(threads, expected):
    assert checked(threads=threads)["threads"] == expected


def test_seed_that_is_not_an_integer_names_the_key_and_the_fix():
    message = error(seeds=["x"])
    assert message.startswith("config 'seeds[0]': 'x' is not of type 'integer'")
    assert "e.g. --config seeds='[0, 1]'" in message
    assert "minimum of 0" in error(seeds=["-1"])


def test_schema_violations_are_one_line_naming_the_key():
    assert error(scale="huge").startswith("config 'scale': 'huge' is not one of ['smoke', 'reduced', 'paper']")
    assert "e.g. --config scale=reduced" in error(scale="huge")
    assert error(threads=0).startswith("config 'threads': 0 is less than the minimum of 1")
    assert error(threads="x").startswith("config 'threads': 'x' is not of type")
    assert error(papers="baselines").startswith("config 'papers': 'baselines' is not of type 'array'")
    assert error(dataset_substitutes={"cifar10": ["a"]}).startswith("config 'dataset_substitutes.cifar10': ")
    assert "e.g. --config recipe_overrides='{epochs: 1}'" in error(recipe_overrides=[1])


def test_unknown_key_suggests_the_close_one():
    message = error(scal="smoke")
    assert message.startswith("config: unknown key 'scal' (did you mean 'scale'?)")
    assert "threads" in message and "config.schema.yaml" in message


def test_papers():
    implemented = ["baselines", "tas", "autoslim"]
    assert plan.check_papers([], implemented) == implemented
    assert plan.check_papers(["tas"], implemented) == ["tas"]
    with pytest.raises(plan.ConfigError, match=r"^config 'papers': 'taz' is not an implemented replication "
                                               r"\(did you mean 'tas'\?\); implemented: baselines, tas, autoslim"):
        plan.check_papers(["taz"], implemented)


EXPERIMENTS = {"baselines": {"resnet20-cifar10": ("smoke", "reduced", "paper"), "resnet20-cifar100": ("paper",)},
               "tas": {"ResNet20-C10": ("smoke", "reduced", "paper")}}


def test_experiments_known_at_this_scale_pass():
    plan.check_experiments([], EXPERIMENTS, "smoke")
    plan.check_experiments(["resnet20-cifar10", "ResNet20-C10"], EXPERIMENTS, "smoke")
    plan.check_experiments(["resnet20-cifar100"], EXPERIMENTS, "paper")


def test_unknown_experiment_names_the_papers_searched_and_close_names():
    with pytest.raises(plan.ConfigError) as err:
        plan.check_experiments(["resnet20-cifar1O"], EXPERIMENTS, "smoke")
    message = str(err.value)
    assert message.startswith("config 'experiments': 'resnet20-cifar1O' is not an experiment of the selected "
                              "papers (baselines, tas) (did you mean 'resnet20-cifar10'")
    assert "known: ResNet20-C10, resnet20-cifar10, resnet20-cifar100" in message  # few: all listed
    many = {"p": {f"net{i}": ("smoke",) for i in range(40)}}
    with pytest.raises(plan.ConfigError, match="keys of 'experiments' in replications/<paper>/replication.yaml"):
        plan.check_experiments(["nope"], many, "smoke")


def test_experiment_of_another_scale_says_where_it_runs():
    with pytest.raises(plan.ConfigError, match=r"'resnet20-cifar100' \(baselines\) does not run at scale smoke "
                                               r"\(only at paper\): drop it, or set scale=paper"):
        plan.check_experiments(["resnet20-cifar100"], EXPERIMENTS, "smoke")


TRAINING = {"epochs", "lr", "batch_size", "train_subset"}
METHODS = {"tas": {"target_ratio", "tau_max"}, "autoslim": {"targets", "supernet_width"}}


def test_recipe_overrides_keys():
    plan.check_recipe_overrides({}, TRAINING, {})
    plan.check_recipe_overrides({"epochs": "1", "target_ratio": 0.5, "targets": ["0.5x"]}, TRAINING, METHODS)
    with pytest.raises(plan.ConfigError) as err:
        plan.check_recipe_overrides({"epoch": 1}, TRAINING, METHODS)
    message = str(err.value)
    assert message.startswith("config 'recipe_overrides': unknown recipe key 'epoch' (did you mean 'epochs'?)")
    assert "tas search keys: target_ratio, tau_max" in message and "autoslim search keys" in message
    with pytest.raises(plan.ConfigError, match=r"unknown recipe key 'target_ratio' \(the selected papers run no search\)"):
        plan.check_recipe_overrides({"target_ratio": 0.5}, TRAINING, {})


def test_overrides_reach_only_recipes_with_their_keys():
    overrides = {"epochs": "1", "target_ratio": "0.5", "augment": {"flip": False}}
    assert plan.overrides_for(overrides, TRAINING) == {"epochs": "1"}
    assert plan.overrides_for(overrides, TRAINING | METHODS["tas"]) == {"epochs": "1", "target_ratio": "0.5"}
    assert plan.set_args({"epochs": "1", "augment": {"flip": False}}) == \
        "--set epochs=1 --set 'augment={\"flip\": false}'"


def test_job_threads():
    defaults = {"smoke": 1, "reduced": 8, "paper": 8}
    assert plan.job_threads(None, "smoke", defaults) == 1
    assert plan.job_threads(None, "paper", defaults) == 8
    assert plan.job_threads(3, "paper", defaults) == 3


# -- resume guard ----------------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_resume_guard_keeps_the_checkpoint_of_the_same_job(tmp_path):
    run, recipe = tmp_path / "run", write(tmp_path / "recipe.yaml", "epochs: 4\n")
    assert "no checkpoint yet" in plan.resume_guard(run, ["checkpoint.pt"], [recipe], "seed=0")
    write(run / "checkpoint.pt", "weights")
    message = plan.resume_guard(run, ["checkpoint.pt"], [recipe], "seed=0")
    assert message == "resume guard: same job; resuming from checkpoint.pt"
    assert (run / "checkpoint.pt").read_text() == "weights"


@pytest.mark.parametrize("change", ["recipe", "settings", "key file added"])
def test_resume_guard_removes_the_checkpoint_when_the_job_changed(tmp_path, change):
    run, recipe = tmp_path / "run", write(tmp_path / "recipe.yaml", "epochs: 4\n")
    teacher = write(tmp_path / "metrics.json", "{}")
    plan.resume_guard(run, ["checkpoint.pt"], [recipe], "seed=0")
    write(run / "checkpoint.pt", "weights")
    files, settings = [recipe], "seed=0"
    if change == "recipe":
        write(recipe, "epochs: 5\n")
    elif change == "settings":
        settings = "seed=0 threads=2"
    else:
        files = [recipe, teacher]
    message = plan.resume_guard(run, ["checkpoint.pt"], files, settings)
    assert message == "resume guard: removed checkpoint.pt (its inputs or settings changed); starting afresh"
    assert not (run / "checkpoint.pt").exists()
    assert "same job" in plan.resume_guard(run, ["checkpoint.pt"], files, settings)  # recorded


def test_resume_guard_removes_a_checkpoint_it_has_no_record_of(tmp_path):
    write(tmp_path / "checkpoint.pt", "weights")
    message = plan.resume_guard(tmp_path, ["checkpoint.pt"], [], "seed=0")
    assert "no record of the job that wrote it" in message and not (tmp_path / "checkpoint.pt").exists()


def test_resume_guard_ignores_the_keys_it_is_told_to(tmp_path):
    recipe = write(tmp_path / "recipe.yaml", "# header\nepochs: 4\ntargets: ['0.5x']\n")
    plan.resume_guard(tmp_path / "run", ["search_checkpoint.pt"], [recipe], "", ignore=["targets"])
    write(tmp_path / "run/search_checkpoint.pt", "state")
    write(recipe, "# other header\nepochs: 4\ntargets: ['0.3x', '0.5x']\n")
    assert "same job" in plan.resume_guard(tmp_path / "run", ["search_checkpoint.pt"], [recipe], "", ignore=["targets"])
    write(recipe, "epochs: 5\ntargets: ['0.3x']\n")
    assert "removed" in plan.resume_guard(tmp_path / "run", ["search_checkpoint.pt"], [recipe], "", ignore=["targets"])


def test_a_changed_autoslim_recipe_discards_the_reused_super_network_too(tmp_path):
    """A resumed supernet stage reuses supernet.pt; after a recipe change the guard must remove it
    with the checkpoint, or the stage refuses it ("its recipe differ") instead of retraining."""
    from nas_impl.methods.autoslim.recipe import INFO

    stage = INFO.stages[0]
    recipe = write(tmp_path / "recipe.yaml", "epochs: 4\nchannel_step: 8\n")
    run = tmp_path / "run"
    plan.resume_guard(run, stage.state_files, [recipe], "seed=0", ignore=stage.ignores)
    for name in ("search_checkpoint.pt", "supernet.pt"):
        write(run / name, "state")
    write(recipe, "epochs: 4\nchannel_step: 4\n")
    plan.resume_guard(run, stage.state_files, [recipe], "seed=0", ignore=stage.ignores)
    assert not (run / "search_checkpoint.pt").exists() and not (run / "supernet.pt").exists()


def test_resume_guard_command_line(tmp_path):
    recipe = write(tmp_path / "recipe.yaml", "epochs: 4\n")
    write(tmp_path / "run/checkpoint.pt", "weights")
    argv = ["resume-guard", "--dir", str(tmp_path / "run"), "--state", "checkpoint.pt", "--key-file", str(recipe),
            "--key", "seed=0"]
    out = subprocess.run([sys.executable, "-m", "nas_impl.plan", *argv], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("resume guard: removed checkpoint.pt (no record")
    out = subprocess.run([sys.executable, "-m", "nas_impl.plan", *argv], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "resume guard: same job; no checkpoint yet"


def test_replications_are_the_folders_with_a_manifest(tmp_path):
    for name in ("tas", "autoslim", "newpaper"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "replication.yaml").write_text("paper: x\n")
    (tmp_path / "notes").mkdir()  # no manifest: not a replication
    assert plan.discover_replications(tmp_path) == ["autoslim", "newpaper", "tas"]
    repo = Path(__file__).resolve().parents[2]
    assert plan.discover_replications(repo / "replications") == ["autoshrink", "autoslim", "baselines", "memnas",
                                                                         "proxylessnas", "tas"]


def test_search_method_names_and_keys_come_from_the_method_registry():
    from nas_impl.methods import method_keys, method_names

    assert method_names() == ["autoshrink", "autoslim", "memnas", "proxylessnas", "tas"]
    assert {"round0", "controller_from", "memory"} <= method_keys("memnas")
    assert {"target_ratio", "arch_lr", "tau_max"} <= method_keys("tas")
    assert {"grad_mode", "latency_table", "supernet_warmup_epochs"} <= method_keys("proxylessnas")
    assert {"targets", "supernet_width", "slim_images"} <= method_keys("autoslim")
    assert not method_keys("tas") & {"epochs", "lr"}  # training keys are the recipe's, not the method's
