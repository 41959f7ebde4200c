"""Training recipes: every hyperparameter of one training run, loaded from YAML.

A recipe value may be written plainly (`lr: 0.1`) or with its provenance
(`lr: {value: 0.1, source: "TAS paper, Sec. 4.1"}`); the `paper` recipes of the
replications use the second form so that every pinned number says where it comes from.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from nas_impl.data.augment_spec import augmentation_problem
from nas_impl.errors import SpecError
from nas_impl.io import read_user_text

SCHEDULES = ("constant", "step", "multistep", "cosine", "linear")
OPTIMIZERS = ("sgd", "adam", "rmsprop_tf")


class RecipeKeyError(SpecError):
    """A bad recipe value. `keys`: the recipe keys involved, the one at fault first; `detail`: the
    message without its origin, so that a caller can blame the override (`nasrepro recipe --set`)
    that caused it rather than the file."""

    def __init__(self, origin: str, keys: Iterable[str], detail: str) -> None:
        self.origin, self.keys, self.detail = origin, tuple(keys), detail
        super().__init__(f"{origin}: {detail}" if origin else detail)

    def located(self, origin: str) -> RecipeKeyError:
        return RecipeKeyError(origin, self.keys, self.detail)


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation from a trained teacher: loss = (1-alpha)*CE + alpha*T^2*KL."""

    teacher: str | None = None  # the teacher's checkpoint.pt; the workflow passes it per run (--teacher)
    temperature: float = 4.0
    alpha: float = 0.9

    def __post_init__(self) -> None:
        for key, ok, expected in (("temperature", self.temperature > 0, "positive"),
                                  ("alpha", 0 <= self.alpha <= 1, "in [0, 1] (the weight of the KL term)")):
            if not ok:
                raise RecipeKeyError("", ("distill",), f"recipe key 'distill.{key}' = {getattr(self, key)!r}: "
                                                       f"must be {expected}")


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int = 128
    eval_batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    # `rmsprop_tf`: TensorFlow 1's RMSProp (mean square starts at 1, eps inside the root; optim.TFRMSprop)
    rmsprop_decay: float = 0.9
    rmsprop_eps: float = 1e-10
    weight_decay: float = 5e-4
    # Exempt BN parameters and biases (all parameters with fewer than 2 dims) from weight decay.
    no_decay_bn_bias: bool = False
    schedule: str = "cosine"
    min_lr: float = 0.0
    step_size: float = 30.0  # epochs, for `step`
    milestones: tuple[float, ...] = ()  # epochs, for `multistep`
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup_lr: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    lr_per_epoch: bool = False  # the schedule moves once an epoch (TF's global_epoch), not every step
    ema_decay: float | None = None  # evaluate an exponential moving average of the weights (TF's rule, training/ema.py)
    # Language modelling (AWD-LSTM / DARTS recipes; an image task refuses them when set).
    variable_bptt: bool = False  # window lengths drawn around the model's seq_len, lr scaled by length/seq_len
    asgd_nonmono: int | None = None  # switch SGD -> averaged SGD once validation stalls for this many epochs
    ar: float = 0.0  # activation regularisation: ar * mean(dropped RNN output ^ 2)
    tar: float = 0.0  # temporal activation regularisation: tar * mean((h_t - h_{t-1}) ^ 2)
    keep_best: bool = False  # evaluate with the weights of the best validation epoch, not the last
    augment: dict[str, Any] = field(default_factory=lambda: {"crop_padding": 4, "flip": True})
    distill: Distillation | None = None
    # Class-balanced subsets of the train / test split (smoke scale); None = whole split.
    train_subset: int | None = None
    test_subset: int | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for keys, ok, expected in self._checks():
            if not ok():
                key = keys[0]
                raise RecipeKeyError("", keys, f"recipe key '{key}' = {_show(getattr(self, key))}: must be {expected}")
        problem = augmentation_problem(self.augment)
        if problem is not None:
            raise RecipeKeyError("", ("augment",), f"recipe key 'augment' = {_show(self.augment)}: {problem}")

    def _checks(self) -> list[tuple[tuple[str, ...], Any, str]]:
        """(keys involved, the one at fault first; test; what the value must be), in order."""
        epochs, milestones = self.epochs, list(self.milestones)
        subset = "a positive number of images, or null for the whole split"
        return [
            (("epochs",), lambda: epochs >= 1, "a positive integer"),
            (("batch_size",), lambda: self.batch_size >= 1, "a positive integer"),
            (("eval_batch_size",), lambda: self.eval_batch_size >= 1, "a positive integer"),
            (("optimizer",), lambda: self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
            (("schedule",), lambda: self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
            (("lr",), lambda: self.lr > 0, "positive"),
            (("momentum",), lambda: 0 <= self.momentum < 1, "in [0, 1)"),
            (("nesterov", "momentum"), lambda: not (self.optimizer == "sgd" and self.nesterov and self.momentum == 0),
             "false when 'momentum' is 0 (Nesterov momentum needs momentum > 0)"),
            (("betas",), lambda: len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
             "two numbers in [0, 1), e.g. [0.9, 0.999]"),
            (("weight_decay",), lambda: self.weight_decay >= 0, "non-negative (0 disables it)"),
            (("min_lr",), lambda: self.min_lr >= 0, "non-negative"),
            (("step_size",), lambda: self.step_size > 0, "a positive number of epochs"),
            (("milestones", "epochs"), lambda: all(0 <= m <= epochs for m in milestones) and milestones == sorted(milestones),
             f"non-decreasing epochs within [0, epochs] (epochs = {epochs})"),
            (("gamma",), lambda: self.gamma > 0, "positive"),
            (("warmup_epochs", "epochs"), lambda: 0 <= self.warmup_epochs < epochs, f"in [0, epochs) (epochs = {epochs})"),
            (("warmup_lr",), lambda: self.warmup_lr >= 0, "non-negative"),
            (("label_smoothing",), lambda: 0 <= self.label_smoothing < 1, "in [0, 1)"),
            (("grad_clip",), lambda: self.grad_clip is None or self.grad_clip > 0, "positive, or null for no clipping"),
            (("asgd_nonmono", "optimizer"), lambda: self.asgd_nonmono is None or (self.asgd_nonmono >= 1 and self.optimizer == "sgd"),
             "a positive number of epochs with 'optimizer: sgd' (it switches SGD to averaged SGD), or null"),
            (("rmsprop_decay",), lambda: 0 <= self.rmsprop_decay < 1, "in [0, 1)"),
            (("rmsprop_eps",), lambda: self.rmsprop_eps > 0, "positive"),
            (("ema_decay", "asgd_nonmono"), lambda: self.ema_decay is None or (0 < self.ema_decay < 1
                                                                               and self.asgd_nonmono is None),
             "in (0, 1), or null; not with 'asgd_nonmono' (both choose the evaluated weights)"),
            (("ar",), lambda: self.ar >= 0, "non-negative (0 disables it)"),
            (("tar",), lambda: self.tar >= 0, "non-negative (0 disables it)"),
            (("train_subset",), lambda: self.train_subset is None or self.train_subset >= 1, subset),
            (("test_subset",), lambda: self.test_subset is None or self.test_subset >= 1, subset),
        ]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        out["milestones"] = list(self.milestones)
        return out


def _show(value: Any) -> str:
    """A value as the message shows it: null, true and false as YAML writes them, tuples as lists."""
    if value is None or isinstance(value, bool):
        return yaml.safe_dump(value).removesuffix("...\n").strip()
    return repr(list(value) if isinstance(value, tuple) else value)


def unwrap_sources(raw: dict[str, Any], origin: str = "recipe") -> tuple[dict[str, Any], dict[str, str]]:
    sources = raw.pop("sources", None) or {}
    if not isinstance(sources, dict):
        raise RecipeKeyError(origin, ("sources",), f"recipe key 'sources' = {sources!r}: must be a mapping of "
                                                   "key -> where its value comes from")
    values, sources = {}, dict(sources)
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"value", "source"}:
            values[key], sources[key] = value["value"], str(value["source"])
        else:
            values[key] = value
    return values, sources


def unknown_keys_error(origin: str, unknown: list[str], known: Iterable[str], what: str = "recipe") -> RecipeKeyError:
    """`unknown` keys (sorted) of a recipe, with the closest known key as a hint."""
    known = sorted(known)
    guesses = {key: match[0] for key in unknown if (match := difflib.get_close_matches(key, known, n=1))}
    if len(unknown) == 1 and guesses:
        hint = f" (did you mean '{guesses[unknown[0]]}'?)"
    else:
        hint = f" (did you mean {', '.join(f'{v!r} for {k!r}' for k, v in guesses.items())}?)" if guesses else ""
    return RecipeKeyError(origin, unknown, f"unknown {what} key(s) {unknown}{hint}; allowed keys: {known}")


def recipe_from_dict(raw: dict[str, Any], origin: str = "recipe") -> Recipe:
    """Build a Recipe, naming `origin` (a file path) and the key in every error."""
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: a recipe must be a mapping of hyperparameters, got {type(raw).__name__}")
    values, sources = unwrap_sources(dict(raw), origin)
    known = {f.name for f in dataclasses.fields(Recipe)} - {"sources"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise unknown_keys_error(origin, unknown, known)
    if "epochs" not in values:
        raise RecipeKeyError(origin, ("epochs",), "recipe key 'epochs' is required")
    check_types(Recipe, values, origin)
    if values.get("distill") is not None:
        distill = values["distill"]
        if not isinstance(distill, dict) or set(distill) - {"teacher", "temperature", "alpha"}:
            raise RecipeKeyError(origin, ("distill",), f"recipe key 'distill' must be a mapping of teacher (a "
                                 f"checkpoint.pt; or nasrepro train --teacher), temperature and alpha; got {distill!r}")
        check_types(Distillation, distill, origin, prefix="distill.", keys=("distill",))
        try:
            values["distill"] = Distillation(**distill)
        except RecipeKeyError as err:
            raise err.located(origin) from None
    for key in ("betas", "milestones"):
        if key in values:
            values[key] = tuple(values[key])
    try:
        return Recipe(**values, sources=sources)
    except RecipeKeyError as err:
        raise err.located(origin) from None
    except TypeError as err:
        raise SpecError(f"{origin}: {err}") from None


# What a value of each annotated field type must be (fields of other types are checked elsewhere).
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "tuple[float, float]": "a list of two numbers, e.g. [0.9, 0.999]",
    "tuple[float, ...]": "a list of numbers, e.g. [82, 123]",
}
_NUMBER_TEXT = re.compile(r"[-+]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][-+]?\d+)?")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return _is_number(value) and math.isfinite(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return (isinstance(value, (list, tuple)) and all(_fits("float", v) for v in value)
            and (kind != "tuple[float, float]" or len(value) == 2))


def string_number_hint(text: str, integer: bool = False) -> str | None:
    """Why a string that should have been a number was read as a string, and how to write it; None
    when `text` does not look like a number (of the kind `integer` says)."""
    text = text.strip()
    if not _NUMBER_TEXT.fullmatch(text):
        return None
    number = Decimal(text.replace("_", ""))
    if integer and number != number.to_integral_value():
        return None
    plain = str(int(number)) if integer else format(number.normalize(), "f")
    if "e" not in text.lower():
        return f"was read as a string (is it quoted?): write {plain} without quotes"
    if integer:
        return f"was read as a string: YAML reads exponent notation without a decimal point as text; write {plain}"
    mantissa, exponent = re.split("[eE]", text)
    missing = [need for need, absent in (("a decimal point", "." not in mantissa),
                                         ("a sign after the e", exponent[0] not in "+-")) if absent]
    mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
    exponent = exponent if exponent[0] in "+-" else f"+{exponent}"
    return (f"was read as a string: YAML needs {' and '.join(missing)} in exponent notation; "
            f"write {mantissa}e{exponent} or {plain}")


def type_problem(annotation: str, value: Any) -> str | None:
    """What is wrong with `value` for a field annotated `annotation` (a string: these modules use
    postponed annotations), as the end of a message; None if it fits or is checked elsewhere."""
    optional = annotation.endswith(" | None")
    kind = annotation.removesuffix(" | None")
    expected = _EXPECTED.get(kind)
    if expected is None or (value is None and optional) or _fits(kind, value):
        return None
    if kind in ("int", "float"):
        if isinstance(value, str) and (hint := string_number_hint(value, integer=kind == "int")):
            return f" {hint}"
        if kind == "float" and _is_number(value):
            return ": must be a finite number"
    elif kind.startswith("tuple") and isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, str) and (hint := string_number_hint(item)):
                return f": item {item!r} {hint}"
    if value is None:
        return f": must be {expected}, not null (leave the key out to use its default)"
    return f": must be {expected}" + (", or null" if optional else "")


def check_types(cls: type, values: dict[str, Any], origin: str, what: str = "recipe key", prefix: str = "",
                keys: tuple[str, ...] | None = None) -> None:
    """Every value of `values` whose key is a field of the dataclass `cls` must fit the field's type:
    YAML reads `epochs: "15"` and `weight_decay: 5e-4` as strings, `lr:` (nothing) as null."""
    annotations = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for key, value in values.items():
        problem = type_problem(annotations.get(key, ""), value)
        if problem is not None:
            raise RecipeKeyError(origin, keys or (key,), f"{what} '{prefix}{key}' = {_show(value)}{problem}")


def read_recipe_yaml(path: str | Path, what: str = "recipe") -> Any:
    """The parsed YAML of a recipe file, or one SpecError naming the file."""
    path = Path(path)
    text = read_user_text(path, f"{what} file", "pass --recipe with an existing YAML file")
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise SpecError(f"{what} file {path} is not valid YAML: {' '.join(str(err).split())}") from None


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    raw = read_recipe_yaml(path)
    if isinstance(raw, dict):
        raw.update(overrides or {})
    return recipe_from_dict(raw, origin=str(path))
