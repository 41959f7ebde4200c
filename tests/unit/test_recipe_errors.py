"""Every bad recipe value ends with one SpecError naming the file (or the --set option) and the key.

The limits checked are the optimizers' own (torch.optim.SGD rejects a negative momentum or weight
decay and Nesterov without momentum; Adam rejects betas outside [0, 1)) and what the schedules,
loaders and augmentation can run with.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from nas_impl.cli import main
from nas_impl.errors import SpecError
from nas_impl.methods.autoslim.recipe import search_recipe_from_dict as autoslim_recipe
from nas_impl.methods.tas.recipe import search_recipe_from_dict as tas_recipe
from nas_impl.training.recipe import load_recipe, read_recipe_yaml, recipe_from_dict

ROOT = Path(__file__).resolve().parents[2]
TAS = str(ROOT / "replications/tas")
AUTOSLIM = str(ROOT / "replications/autoslim")

# (YAML lines added to `epochs: 10`, the key the message must name)
BAD_VALUES = [
    ("momentum: -0.1", "momentum"),
    ("momentum: 1.0", "momentum"),
    ("weight_decay: -1.0", "weight_decay"),
    ("eval_batch_size: 0", "eval_batch_size"),
    ("batch_size: -8", "batch_size"),
    ("min_lr: -0.001", "min_lr"),
    ("gamma: 0", "gamma"),
    ("gamma: -0.1", "gamma"),
    ("step_size: 0", "step_size"),
    ("warmup_lr: -0.1", "warmup_lr"),
    ("warmup_epochs: 10", "warmup_epochs"),
    ("grad_clip: 0", "grad_clip"),
    ("grad_clip: -1.0", "grad_clip"),
    ("betas: [0.9, 1.0]", "betas"),
    ("betas: [-0.1, 0.999]", "betas"),
    ("betas: [0.9]", "betas"),
    ("betas: 0.9", "betas"),
    ("milestones: [5, 2]", "milestones"),
    ("milestones: [5, 11]", "milestones"),
    ("milestones: [-1, 5]", "milestones"),
    ("milestones: 5", "milestones"),
    ("train_subset: -5", "train_subset"),
    ("train_subset: 0", "train_subset"),
    ("test_subset: -1", "test_subset"),
    ("test_subset: 2.5", "test_subset"),
    ("nesterov: true\nmomentum: 0.0", "nesterov"),
    ("augment: {crop: 4}", "augment"),
    ("augment: [4]", "augment"),
    ("augment: {crop_padding: -1}", "augment"),
    ("augment: {crop_padding: four}", "augment"),
    ("augment: {flip: 1}", "augment"),
    ("augment: {color_jitter: [0.4, 0.4, 0.4]}", "augment"),
    ("augment: {color_jitter: [0.4, 0.4, 0.4, 0.6]}", "augment"),
    ("augment: {color_jitter: [-0.4, 0.4, 0.4, 0.1]}", "augment"),
    ("augment: {color_jitter: [0.4, 0.4, .inf, 0.1]}", "augment"),
    ("augment: {color_jitter: 0.4}", "augment"),
    ("augment: {lighting: -0.1}", "augment"),
    ("augment: {crop_scale: [0.0, 1.0]}", "augment"),
    ("augment: {crop_scale: [0.5, 0.25]}", "augment"),
    ("augment: {crop_scale: [0.25, 1.5]}", "augment"),
    ("augment: {crop_scale: 0.25}", "augment"),
    ("augment: {lighting: true}", "augment"),
    ("augment: {lighting: 1e-1}", "augment"),
    ("lr: .inf", "lr"),
    ("lr: .nan", "lr"),
    ("lr:", "lr"),
    ("label_smoothing: 1.0", "label_smoothing"),
    ("distill: {alpha: 1.5}", "distill.alpha"),
    ("distill: {temperature: 0}", "distill.temperature"),
    ("distill: {temperature: hot}", "distill.temperature"),
    ("sources: 3", "sources"),
    ("optimizer: sgdm", "optimizer"),
    ("epochs: ten", "epochs"),
]


def write_recipe(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "recipe.yaml"
    lines = extra.splitlines()
    if not any(line.startswith("epochs:") for line in lines):
        lines.insert(0, "epochs: 10")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("extra, key", BAD_VALUES)
def test_bad_values_name_the_file_and_the_key(tmp_path, extra, key):
    path = write_recipe(tmp_path, extra)
    with pytest.raises(SpecError) as err:
        load_recipe(path)
    message = str(err.value)
    assert message.startswith(f"{path}: recipe key '{key}' = "), message
    assert "\n" not in message


@pytest.mark.parametrize("extra", [
    "momentum: 0.0", "nesterov: true\nmomentum: 0.5", "optimizer: adam\nnesterov: true\nmomentum: 0.0",
    "grad_clip: null", "grad_clip: 5", "train_subset: null", "train_subset: 1", "milestones: []",
    "milestones: [0, 5, 5, 10]", "betas: [0.0, 0.0]", "augment: {}", "augment: null",
    "augment: {crop_padding: 0, flip: false, cutout: 16}", "weight_decay: 0", "gamma: 1.5", "warmup_epochs: 9.5",
    "distill: {alpha: 0, temperature: 1}", "distill: {teacher: null}",
    "augment: {flip: true, color_jitter: [0.4, 0.4, 0.4, 0.5], lighting: 0.1}",
    "augment: {color_jitter: [0, 0, 0, 0], lighting: 0}", "augment: {color_jitter: null}",
    "augment: {crop_scale: [0.25, 1.0]}", "augment: {crop_scale: [1, 1]}", "augment: {crop_scale: null}",
])
def test_edge_values_that_are_valid_pass(tmp_path, extra):
    load_recipe(write_recipe(tmp_path, extra))


@pytest.mark.parametrize("extra, expected", [
    ("augment: {color_jitter: [0.4, 0.4, 0.4]}",
     "key 'color_jitter' = [0.4, 0.4, 0.4] must be a list of four non-negative numbers "
     "[brightness, contrast, saturation, hue], hue at most 0.5"),
    ("augment: {lighting: -0.1}", "key 'lighting' = -0.1 must be a non-negative number (the standard deviation "
                                  "of AlexNet's PCA lighting noise, e.g. 0.1; 0 disables it)"),
])
def test_imagenet_augmentation_errors_say_what_the_value_must_be(tmp_path, extra, expected):
    path = write_recipe(tmp_path, extra)
    with pytest.raises(SpecError) as err:
        load_recipe(path)
    assert expected in str(err.value)


def test_the_jitter_limits_match_what_torchvision_rejects():
    """The recipe rejects what torchvision's ColorJitter rejects (a negative factor, hue above 0.5)."""
    from torchvision.transforms import ColorJitter

    for bad in ([-0.1, 0, 0, 0], [0, -0.1, 0, 0], [0, 0, -0.1, 0], [0, 0, 0, 0.6]):
        with pytest.raises(ValueError):
            ColorJitter(*bad)
        with pytest.raises(SpecError):
            recipe_from_dict({"epochs": 1, "augment": {"color_jitter": bad}})
    ColorJitter(0.4, 0.4, 0.4, 0.5)
    recipe_from_dict({"epochs": 1, "augment": {"color_jitter": [0.4, 0.4, 0.4, 0.5]}})


def test_the_limits_match_what_torch_optimizers_reject():
    """The recipe rejects what torch.optim rejects (and more), never less."""
    params = [torch.nn.Parameter(torch.zeros(1))]
    for bad in ({"momentum": -0.1}, {"weight_decay": -1.0}, {"momentum": 0.0, "nesterov": True}):
        with pytest.raises(ValueError):
            torch.optim.SGD(params, lr=0.1, **bad)
        with pytest.raises(SpecError):
            recipe_from_dict({"epochs": 1, **bad})
    for betas in ([1.0, 0.999], [0.9, 1.0], [-0.1, 0.9]):
        with pytest.raises(ValueError):
            torch.optim.Adam(params, lr=0.1, betas=tuple(betas))
        with pytest.raises(SpecError):
            recipe_from_dict({"epochs": 1, "optimizer": "adam", "betas": betas})


# -- numbers YAML 1.1 reads as strings ------------------------------------------------------------
@pytest.mark.parametrize("line, message, suggested", [
    ("weight_decay: 5e-4", "recipe key 'weight_decay' = '5e-4' was read as a string: YAML needs a decimal point in "
                           "exponent notation; write 5.0e-4 or 0.0005", ["5.0e-4", "0.0005"]),
    ("lr: 1e-1", "recipe key 'lr' = '1e-1' was read as a string: YAML needs a decimal point in exponent notation; "
                 "write 1.0e-1 or 0.1", ["1.0e-1", "0.1"]),
    ("min_lr: 1e-5", "recipe key 'min_lr' = '1e-5' was read as a string: YAML needs a decimal point in exponent "
                     "notation; write 1.0e-5 or 0.00001", ["1.0e-5", "0.00001"]),
    ("lr: 2e1", "recipe key 'lr' = '2e1' was read as a string: YAML needs a decimal point and a sign after the e in "
                "exponent notation; write 2.0e+1 or 20", ["2.0e+1", "20"]),
    ("lr: 1.5E2", "recipe key 'lr' = '1.5E2' was read as a string: YAML needs a sign after the e in exponent "
                  "notation; write 1.5e+2 or 150", ["1.5e+2", "150"]),
    ("epochs: 1e2", "recipe key 'epochs' = '1e2' was read as a string: YAML reads exponent notation without a "
                    "decimal point as text; write 100", ["100"]),
    ("epochs: '15'", "recipe key 'epochs' = '15' was read as a string (is it quoted?): write 15 without quotes", None),
    ("betas: [0.9, 999e-3]", "recipe key 'betas' = [0.9, '999e-3']: item '999e-3' was read as a string", None),
])
def test_numbers_read_as_strings_say_how_to_write_them(tmp_path, line, message, suggested):
    path = write_recipe(tmp_path, line)
    with pytest.raises(SpecError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    key, text = line.split(": ", 1)
    for spelling in suggested or []:  # each suggested spelling is the number itself, to YAML 1.1
        assert yaml.safe_load(f"{key}: {spelling}")[key] == pytest.approx(float(text))


def test_search_recipe_settings_check_their_types(tmp_path):
    tas = {"epochs": 1, "target_ratio": 0.5}
    cases = [
        (tas_recipe, {**tas, "arch_lr": "1e-3"}, "search recipe key 'arch_lr' = '1e-3' was read as a string: YAML needs "
                                                 "a decimal point in exponent notation; write 1.0e-3 or 0.001"),
        (tas_recipe, {**tas, "arch_weight_decay": -1.0}, "search recipe key 'arch_weight_decay' = -1.0: must be"),
        (tas_recipe, {**tas, "arch_betas": [0.5, 1.0]}, "search recipe key 'arch_betas' = [0.5, 1.0]: must be"),
        (tas_recipe, {**tas, "arch_betas": 0.5}, "search recipe key 'arch_betas' = 0.5: must be a list of two numbers"),
        (tas_recipe, {**tas, "block_relu": "yes"}, "search recipe key 'block_relu' = 'yes': must be true or false"),
        (tas_recipe, {**tas, "tau_max": "hot"}, "search recipe key 'tau_max' = 'hot': must be a number"),
        (tas_recipe, {**tas, "split_seed": -1}, "search recipe key 'split_seed' = -1: must be a non-negative integer"),
        (tas_recipe, {"epochs": 1, "target_ratio": "0.5"}, "search recipe key 'target_ratio' = '0.5' was read as a "
                                                           "string (is it quoted?)"),
        (tas_recipe, {**tas, "weight_decay": "5e-4"}, "recipe key 'weight_decay' = '5e-4' was read as a string"),
        (autoslim_recipe, {"epochs": 1, "targets": ["0.5x"], "holdout": "2e-1"},
         "search recipe key 'holdout' = '2e-1' was read as a string"),
        (autoslim_recipe, {"epochs": 1, "targets": ["0.5x"], "divisions": 2.5},
         "search recipe key 'divisions' = 2.5: must be an integer"),
        (autoslim_recipe, {"epochs": 1, "targets": ["0.5x"], "inplace_distill": None},
         "search recipe key 'inplace_distill' = null: must be true or false"),
    ]
    for build, raw, message in cases:
        with pytest.raises(SpecError) as err:
            build(raw, "search.yaml")
        assert str(err.value).startswith(f"search.yaml: {message}"), str(err.value)


# -- recipe files that cannot be read -------------------------------------------------------------
def test_a_recipe_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("epochs: 3\n# Schrödinger\n".encode("latin-1"))
    with pytest.raises(SpecError, match=rf"recipe file {path} is not UTF-8 text \(byte 0xf6 .*save it as UTF-8"):
        load_recipe(path)


def test_a_recipe_path_that_is_a_folder_names_it(tmp_path):
    with pytest.raises(SpecError, match=rf"search recipe file {tmp_path} is a folder, not a file"):
        read_recipe_yaml(tmp_path, "search recipe")


def test_an_unreadable_recipe_names_the_file(tmp_path, monkeypatch):
    path = write_recipe(tmp_path, "lr: 0.1")
    real = Path.read_text

    def denied(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(SpecError, match=rf"recipe file {path} cannot be read \(permission denied\)"):
        load_recipe(path)


# -- the command line: one line, exit status 2 ----------------------------------------------------
def one_error_line(capsys, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith(f"nasrepro {argv[0]}: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("extra, key", [
    ("train_subset: -5", "train_subset"), ("weight_decay: 5e-4", "weight_decay"), ("eval_batch_size: 0", "eval_batch_size"),
    ("momentum: -0.5", "momentum"), ("augment: {crop_padding: 4, flipp: true}", "augment"),
])
def test_train_with_a_bad_recipe_is_one_line(tmp_path, capsys, extra, key):
    path = write_recipe(tmp_path, extra)
    err = one_error_line(capsys, ["train", "--arch", "resnet20-cifar", "--recipe", str(path), "--dataset",
                                  "fashion-mnist", "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert f"{path}: recipe key '{key}'" in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_train_with_a_recipe_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"epochs: 1\nlr: 0.1 # \xe9\n")
    err = one_error_line(capsys, ["train", "--arch", "resnet20-cifar", "--recipe", str(path), "--dataset",
                                  "fashion-mnist", "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert f"recipe file {path} is not UTF-8 text" in err


def test_search_with_a_string_number_is_one_line(tmp_path, capsys):
    path = tmp_path / "search.yaml"
    path.write_text("epochs: 1\ntarget_ratio: 0.5\narch_lr: 1e-3\n")
    err = one_error_line(capsys, ["search", "--method", "tas", "--arch", "resnet20-cifar", "--recipe", str(path),
                                  "--dataset", "fashion-mnist", "--out", str(tmp_path / "s"), "--device", "cpu"])
    assert f"{path}: search recipe key 'arch_lr' = '1e-3' was read as a string" in err


# -- nasrepro recipe --set: errors an override causes name the --set ------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--replication", TAS, "--name", "retrain", "--set", "epochs=ten"],
     "--set epochs=ten: recipe key 'epochs' = 'ten': must be an integer"),
    (["--replication", TAS, "--name", "retrain", "--set", "epochz=3"],
     "--set epochz=3: unknown recipe key(s) ['epochz'] (did you mean 'epochs'?); allowed keys:"),
    (["--replication", TAS, "--name", "retrain", "--set", "momentum=1.5"],
     "--set momentum=1.5: recipe key 'momentum' = 1.5: must be in [0, 1)"),
    (["--replication", TAS, "--name", "retrain", "--set", "train_subset=-5"],
     "--set train_subset=-5: recipe key 'train_subset' = -5: must be a positive number of images"),
    (["--replication", TAS, "--name", "retrain", "--set", "augment={crop: 4}"],
     "--set augment={\"crop\": 4}: recipe key 'augment' = {'crop': 4}: unknown key(s) ['crop']"),
    (["--replication", TAS, "--name", "retrain", "--set", "augment={crop"], "--set augment={crop: the value is not valid YAML"),
    (["--replication", TAS, "--name", "retrain", "--set", "epochs"], "--set 'epochs' must look like key=value"),
    (["--replication", TAS, "--search", "tas-C010-ResNet56", "--set", "target_ratio=2"],
     "--set target_ratio=2: search recipe key 'target_ratio' = 2: must be in (0, 1]"),
    (["--replication", TAS, "--search", "tas-C010-ResNet56", "--set", "tau_minn=0.1"],
     "--set tau_minn=0.1: unknown search recipe key(s) ['tau_minn'] (did you mean 'tau_min'?)"),
    (["--replication", AUTOSLIM, "--name", "imagenet-resnet", "--set", "epochs=1"],
     "--set epochs=1: conflicts with "),
])
def test_override_errors_name_the_set_option(tmp_path, capsys, argv, message):
    out = tmp_path / "recipe.yaml"
    err = one_error_line(capsys, ["recipe", *argv, "--scale", "paper", "--out", str(out)])
    assert err.startswith(f"nasrepro recipe: error: {message}"), err
    assert "replication.yaml" not in err.split(":")[2]  # the --set is blamed first, not the manifest
    assert not out.exists()


def test_an_override_conflicting_with_the_manifest_names_both(tmp_path, capsys):
    err = one_error_line(capsys, ["recipe", "--replication", AUTOSLIM, "--name", "imagenet-resnet", "--scale", "paper",
                                  "--set", "epochs=1", "--out", str(tmp_path / "r.yaml")])
    assert "replications/autoslim/replication.yaml: recipes.imagenet-resnet.paper: recipe key 'milestones'" in err
    assert "(epochs = 1)" in err and "set 'milestones' too" in err


def test_an_override_in_exponent_notation_is_a_number(tmp_path, capsys):
    out = tmp_path / "recipe.yaml"
    code = main(["recipe", "--replication", TAS, "--name", "retrain", "--scale", "smoke", "--set", "weight_decay=5e-4",
                 "--set", "lr=1E-2", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 0, err
    written = yaml.safe_load(out.read_text())
    assert written["weight_decay"] == 0.0005 and written["lr"] == 0.01
