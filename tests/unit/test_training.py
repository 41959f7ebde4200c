"""The shared trainer: recipes, schedules, losses, determinism, resume, failure messages."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import yaml

from nas_impl.errors import NasReproError, SpecError, TrainingDiverged
from nas_impl.models import build_model
from nas_impl.run_data import run_data
from nas_impl.training import (
    Trainer, distillation_loss, load_checkpoint, load_recipe, lr_at, parameter_groups, recipe_from_dict,
)
from nas_impl.training.seeding import seed_everything

TINY = {
    "epochs": 2, "batch_size": 32, "eval_batch_size": 256, "lr": 0.05, "weight_decay": 5e-4,
    "schedule": "cosine", "train_subset": 512, "test_subset": 200,
    "augment": {"crop_padding": 2, "flip": True},
}
TINY_NET = {"family": "resnet-cifar", "depth": 8, "in_channels": 1, "num_classes": 10}


def make_trainer(tmp_path, name="run", seed=0, device="cpu", **overrides):
    recipe = recipe_from_dict({**TINY, **overrides})
    data = run_data("fashion-mnist", recipe, seed, torch.device(device), data_root=None)
    seed_everything(seed)
    model = build_model(TINY_NET)
    return Trainer(model, recipe, data.train_loader, data.eval_loader, out_dir=tmp_path / name, seed=seed,
                   device=device, record=data.record)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# -- recipes ---------------------------------------------------------------------------------------
def test_recipe_values_may_carry_their_source(tmp_path):
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump({"epochs": 300, "lr": {"value": 0.1, "source": "paper Sec. 4"}}))
    recipe = load_recipe(path)
    assert recipe.lr == 0.1 and recipe.sources == {"lr": "paper Sec. 4"}


def test_recipe_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(SpecError, match=r"bad\.yaml.*unknown recipe key\(s\) \['learning_rate'\].*allowed keys"):
        load_recipe(path)


@pytest.mark.parametrize("raw, key", [({"epochs": 0}, "epochs"), ({"epochs": 3, "schedule": "poly"}, "schedule"),
                                      ({"epochs": 3, "optimizer": "lamb"}, "optimizer"), ({"lr": 0.1}, "epochs")])
def test_recipe_bad_values_name_the_key(raw, key):
    with pytest.raises(SpecError, match=f"'{key}'"):
        recipe_from_dict(raw, origin="r.yaml")


@pytest.mark.parametrize("raw, key", [({"epochs": "15"}, "epochs"), ({"epochs": 3, "nesterov": 1}, "nesterov"),
                                      ({"epochs": 3, "lr": True}, "lr"), ({"epochs": 3, "train_subset": 2.5}, "train_subset")])
def test_recipe_values_must_have_their_type(raw, key):
    with pytest.raises(SpecError, match=f"r.yaml: recipe key '{key}' = .* (must be|was read as a string)"):
        recipe_from_dict(raw, origin="r.yaml")


def test_missing_recipe_file_says_so(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


# -- schedules -------------------------------------------------------------------------------------
def test_cosine_with_warmup():
    r = recipe_from_dict({"epochs": 10, "lr": 0.1, "schedule": "cosine", "warmup_epochs": 2, "warmup_lr": 0.0})
    assert lr_at(r, 0, 100) == 0.0
    assert lr_at(r, 100, 100) == pytest.approx(0.05)  # half-way through warm-up
    assert lr_at(r, 200, 100) == pytest.approx(0.1)  # warm-up done: cosine starts at the peak
    assert lr_at(r, 600, 100) == pytest.approx(0.05)  # half of the 8 decay epochs
    assert lr_at(r, 1000, 100) == pytest.approx(0.0, abs=1e-12)


def test_step_multistep_linear():
    step = recipe_from_dict({"epochs": 90, "lr": 0.1, "schedule": "step", "step_size": 30, "gamma": 0.1})
    assert [lr_at(step, e * 10, 10) for e in (0, 29, 30, 60)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    multi = recipe_from_dict({"epochs": 164, "lr": 0.1, "schedule": "multistep", "milestones": [82, 123]})
    assert [lr_at(multi, e, 1) for e in (81, 82, 123)] == pytest.approx([0.1, 0.01, 0.001])
    linear = recipe_from_dict({"epochs": 4, "lr": 0.2, "schedule": "linear"})
    assert lr_at(linear, 3, 1) == pytest.approx(0.05)


# -- losses and optimizer --------------------------------------------------------------------------
def test_distillation_loss_matches_hand_computation():
    torch.manual_seed(0)
    s, t, y = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    T, alpha = 4.0, 0.9
    ps, pt = (s / T).exp() / (s / T).exp().sum(1, keepdim=True), (t / T).exp() / (t / T).exp().sum(1, keepdim=True)
    kl = (pt * (pt.log() - ps.log())).sum() / 4
    ce = -(s.exp() / s.exp().sum(1, keepdim=True)).log()[torch.arange(4), y].mean()
    expected = (1 - alpha) * ce + alpha * T * T * kl
    assert distillation_loss(s, t, y, T, alpha).item() == pytest.approx(expected.item(), rel=1e-6)


def test_weight_decay_exempts_bn_and_bias():
    model = build_model(TINY_NET)
    decay, no_decay = parameter_groups(model, 5e-4, no_decay_bn_bias=True)
    bn_and_bias = {id(p) for m in model.modules() for p in m.parameters(recurse=False)
                   if isinstance(m, torch.nn.BatchNorm2d) or p.ndim == 1}
    assert {id(p) for p in no_decay["params"]} == bn_and_bias and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and decay["weight_decay"] == 5e-4


# -- the trainer on a small real subset (Fashion-MNIST) --------------------------------------------
def test_same_seed_gives_bit_identical_weights(tmp_path):
    a, b = make_trainer(tmp_path, "a", epochs=1), make_trainer(tmp_path, "b", epochs=1)
    a.fit(), b.fit()
    assert_same_weights(a.model, b.model)
    c = make_trainer(tmp_path, "c", seed=1, epochs=1)
    c.fit()
    assert any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), c.model.parameters()))


def test_resume_after_interruption_is_bit_identical(tmp_path):
    full = make_trainer(tmp_path, "full")
    full.fit()
    interrupted = make_trainer(tmp_path, "resumed")
    assert interrupted.fit(stop_after=1) == {"stopped_after_epoch": 1}
    assert not (tmp_path / "resumed" / "metrics.json").exists()  # no result until the run is complete
    resumed = make_trainer(tmp_path, "resumed")
    metrics = resumed.fit(resume=True)
    assert_same_weights(full.model, resumed.model)
    assert [r["test_top1"] for r in resumed.history] == [r["test_top1"] for r in full.history]
    assert metrics["epochs"] == 2


def test_resuming_a_finished_run_restores_the_log_the_workflow_deleted(tmp_path):
    """Snakemake deletes a job's declared outputs (metrics.json, train_log.csv) before it reruns it;
    resuming from the finished checkpoint must leave both again, the log as it was."""
    make_trainer(tmp_path).fit()
    out = tmp_path / "run"
    log = (out / "train_log.csv").read_text()
    (out / "train_log.csv").unlink()
    (out / "metrics.json").unlink()
    make_trainer(tmp_path).fit(resume=True)
    assert (out / "train_log.csv").read_text() == log and (out / "metrics.json").is_file()


def test_outputs_log_checkpoint_and_provenance(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.fit()
    out = tmp_path / "run"
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["test_top1"]) <= 100 and float(r["images_per_s"]) > 0 for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["top1"] > 30, "two epochs on 512 Fashion-MNIST images should beat chance (10%)"
    run = metrics["run"]
    assert run["seed"] == 0 and run["versions"]["torch"] == torch.__version__ and run["device"] == "cpu"
    assert metrics["wall_time_s"] > 0 and run["device_name"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 2 and state["spec"]["family"] == "resnet-cifar"
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_knowledge_distillation_uses_the_teacher(tmp_path):
    teacher = make_trainer(tmp_path, "teacher", epochs=1)
    teacher.fit()
    kd = make_trainer(tmp_path, "kd", epochs=1,
                      distill={"teacher": str(tmp_path / "teacher" / "checkpoint.pt"), "temperature": 4, "alpha": 0.9})
    plain = make_trainer(tmp_path, "plain", epochs=1)
    kd_row, plain_row = kd.train_epoch(0), plain.train_epoch(0)
    assert kd.teacher is not None and all(not p.requires_grad for p in kd.teacher.parameters())
    assert kd_row["train_loss"] != pytest.approx(plain_row["train_loss"])


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path, lr=1e30, schedule="constant")
    with pytest.raises(TrainingDiverged, match=r"NaN/Inf at epoch 1, step \d+ .*lower the recipe's 'lr'"):
        trainer.fit()
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_resume_refuses_a_different_recipe(tmp_path):
    make_trainer(tmp_path).fit(stop_after=1)
    other = make_trainer(tmp_path, lr=0.2)
    with pytest.raises(NasReproError, match="cannot resume .* recipe differ"):
        other.fit(resume=True)


def test_corrupt_checkpoint_message(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(NasReproError, match=r"checkpoint .*checkpoint\.pt cannot be read"):
        load_checkpoint(bad)
    with pytest.raises(NasReproError, match="does not exist: train the model first"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")
def test_cuda_bf16_channels_last_step(tmp_path):
    trainer = make_trainer(tmp_path, device="cuda", epochs=1)
    row = trainer.train_epoch(0)
    assert math.isfinite(row["train_loss"])
    assert next(trainer.model.parameters()).is_cuda


def test_imagenet_folders_train_through_the_same_trainer(tmp_path, monkeypatch):
    from functools import partial

    from PIL import Image

    from nas_impl import data

    for split, per_class in (("train", 4), ("val", 2)):
        for c, wnid in enumerate(("n01440764", "n01443537")):
            folder = tmp_path / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (64, 48), (120 * c, 30 * i, 90)).save(folder / f"{i}.png")
    monkeypatch.setattr(data, "load_imagenet", partial(data.load_imagenet, num_classes=2, train_images=8, val_images=4))
    recipe = recipe_from_dict({"epochs": 1, "batch_size": 4, "eval_batch_size": 4, "lr": 0.01, "train_subset": 6})
    loaders = run_data("imagenet", recipe, 0, torch.device("cpu"), data_root=tmp_path)
    assert loaders.input_size == (3, 224, 224) and loaders.record["train_images"] == 6
    model = build_model({"family": "mobilenet-v2", "width_mult": 0.25, "num_classes": 1000})
    trainer = Trainer(model, recipe, loaders.train_loader, loaders.eval_loader, out_dir=tmp_path / "run", seed=0)
    metrics = trainer.fit()
    assert metrics["epochs"] == 1 and math.isfinite(metrics["test_loss"]) and trainer.history[0]["train_loss"] > 0
