"""Training recipes: every hyperparameter of one training run, loaded from YAML.

A recipe value may be written plainly (`lr: 0.1`) or with its provenance
(`lr: {value: 0.1, source: "TAS paper, Sec. 4.1"}`); the `paper` recipes of the
replications use the second form so that every pinned number says where it comes from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas_impl.errors import SpecError

SCHEDULES = ("constant", "step", "multistep", "cosine", "linear")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation from a trained teacher: loss = (1-alpha)*CE + alpha*T^2*KL."""

    teacher: str | None = None  # the teacher's checkpoint.pt; the workflow passes it per run (--teacher)
    temperature: float = 4.0
    alpha: float = 0.9


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
    augment: dict[str, Any] = field(default_factory=lambda: {"crop_padding": 4, "flip": True})
    distill: Distillation | None = None
    # Class-balanced subsets of the train / test split (smoke scale); None = whole split.
    train_subset: int | None = None
    test_subset: int | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "a positive integer"),
            ("batch_size", self.batch_size >= 1, "a positive integer"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
            ("schedule", self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
            ("lr", self.lr > 0, "positive"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("warmup_epochs", 0 <= self.warmup_epochs < self.epochs, "in [0, epochs)"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise SpecError(f"recipe key '{key}' = {getattr(self, key)!r}: must be {expected}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        out["milestones"] = list(self.milestones)
        return out


def unwrap_sources(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    values, sources = {}, dict(raw.pop("sources", None) or {})
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"value", "source"}:
            values[key], sources[key] = value["value"], str(value["source"])
        else:
            values[key] = value
    return values, sources


def recipe_from_dict(raw: dict[str, Any], origin: str = "recipe") -> Recipe:
    """Build a Recipe, naming `origin` (a file path) and the key in every error."""
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: a recipe must be a mapping of hyperparameters, got {type(raw).__name__}")
    values, sources = unwrap_sources(dict(raw))
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"{origin}: unknown recipe key(s) {unknown}; allowed keys: {sorted(known - {'sources'})}")
    if "epochs" not in values:
        raise SpecError(f"{origin}: recipe key 'epochs' is required")
    if values.get("distill") is not None:
        distill = values["distill"]
        if not isinstance(distill, dict) or set(distill) - {"teacher", "temperature", "alpha"}:
            raise SpecError(f"{origin}: recipe key 'distill' must be a mapping of teacher (a checkpoint.pt; "
                            f"or nasrepro train --teacher), temperature and alpha; got {distill!r}")
        values["distill"] = Distillation(**distill)
    for key in ("betas", "milestones"):
        if key in values:
            values[key] = tuple(values[key])
    _check_types(values, origin)
    try:
        return Recipe(**values, sources=sources)
    except SpecError as err:
        raise SpecError(f"{origin}: {err}") from None
    except TypeError as err:
        raise SpecError(f"{origin}: {err}") from None


_SCALAR_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_types(values: dict[str, Any], origin: str) -> None:
    """Plain scalar keys must hold values of their type: YAML's `epochs: "15"` is a string."""
    for f in dataclasses.fields(Recipe):
        expected = _SCALAR_TYPES.get(str(f.type).replace(" | None", ""))
        value = values.get(f.name)
        if expected is None or value is None:
            continue
        if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
            raise SpecError(f"{origin}: recipe key '{f.name}' = {value!r} must be of type {f.type}")


def read_recipe_yaml(path: str | Path, what: str = "recipe") -> Any:
    """The parsed YAML of a recipe file, or one SpecError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{what} file {path} does not exist: pass --recipe with an existing YAML file")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SpecError(f"{what} file {path} is not valid YAML: {err}") from None


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    raw = read_recipe_yaml(path)
    if isinstance(raw, dict):
        raw.update(overrides or {})
    return recipe_from_dict(raw, origin=str(path))
