"""Replication manifests: `replications/<paper>/{replication.yaml, published.csv, archs/}`.

`load_replication` validates the YAML against `replication.schema.yaml` (filling its defaults),
then checks what a schema cannot: every experiment's arch file, dataset and recipe exist,
every recipe is a valid Recipe, and every claim names a published row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from nas_impl.errors import SpecError
from nas_impl.replication.published import PublishedRow, load_published
from nas_impl.training.recipe import Recipe, recipe_from_dict

SCALES = ("smoke", "reduced", "paper")
DEFAULT_SEEDS = {"smoke": [0], "reduced": [0], "paper": [0, 1, 2]}
SCHEMA_PATH = Path(__file__).with_name("replication.schema.yaml")


@dataclass(frozen=True)
class Claim:
    table: str
    model: str


@dataclass(frozen=True)
class Experiment:
    name: str
    arch: str
    dataset: str
    recipe: str
    scales: tuple[str, ...]
    claims: tuple[Claim, ...]


@dataclass
class Replication:
    root: Path
    paper: str
    title: str
    accuracy_scales: tuple[str, ...]
    accuracy_tolerance: float
    architecture_tolerance: float
    seeds: dict[str, list[int]]
    datasets: dict[str, dict[str, str]]
    recipes: dict[str, dict[str, dict[str, Any]]]
    experiments: dict[str, Experiment]
    published: list[PublishedRow] = field(repr=False)

    def arch_path(self, experiment: str) -> Path:
        return self.root / "archs" / f"{self.experiments[experiment].arch}.yaml"

    def run_dataset(self, experiment: str, scale: str) -> str:
        return self.datasets[self.experiments[experiment].dataset][scale]

    def recipe(self, name: str, scale: str, overrides: dict[str, Any] | None = None) -> Recipe:
        raw = {**self.recipes[name][scale], **(overrides or {})}
        return recipe_from_dict(raw, origin=f"{self.root / 'replication.yaml'}: recipes.{name}.{scale}")

    def experiments_at(self, scale: str) -> list[str]:
        return [name for name, exp in self.experiments.items() if scale in exp.scales]

    @property
    def tables(self) -> list[str]:
        return sorted({row.table for row in self.published})


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def _fill_defaults(instance: Any, schema: dict[str, Any]) -> None:
    """Insert `default` values of object properties (jsonschema validates but does not fill)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = yaml.safe_load(yaml.safe_dump(sub["default"]))
        if key in instance:
            _fill_defaults(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra)


def validate_manifest(raw: Any, origin: str) -> dict[str, Any]:
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise SpecError(f"{origin}: key '{where}': {err.message}")
    _fill_defaults(raw, _validator().schema)
    return raw


def load_replication(root: str | Path) -> Replication:
    root = Path(root)
    path = root / "replication.yaml"
    if not path.is_file():
        raise SpecError(f"{path} does not exist: a replication folder needs replication.yaml, published.csv and archs/")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path} is not valid YAML: {err}") from None
    raw = validate_manifest(raw, str(path))
    published = load_published(root / "published.csv")
    replication = Replication(
        root=root,
        paper=raw["paper"],
        title=raw["title"],
        accuracy_scales=tuple(raw["accuracy_scales"]),
        accuracy_tolerance=raw["tolerances"]["accuracy"],
        architecture_tolerance=raw["tolerances"]["architecture"],
        seeds={scale: raw["seeds"].get(scale, DEFAULT_SEEDS[scale]) for scale in SCALES},
        datasets=raw["datasets"],
        recipes=raw["recipes"],
        experiments={
            name: Experiment(name, e["arch"], e["dataset"], e["recipe"], tuple(e["scales"]),
                             tuple(Claim(c["table"], c["model"]) for c in e["claims"]))
            for name, e in raw["experiments"].items()
        },
        published=published,
    )
    _check_references(replication, path)
    return replication


def _check_references(rep: Replication, path: Path) -> None:
    claimable = {(row.table, row.model) for row in rep.published}
    for name, exp in rep.experiments.items():
        key = f"{path}: experiments.{name}"
        if not rep.arch_path(name).is_file():
            raise SpecError(f"{key}.arch: {rep.arch_path(name)} does not exist; add the spec under archs/")
        if exp.dataset not in rep.datasets:
            raise SpecError(f"{key}.dataset: '{exp.dataset}' is not a key of 'datasets' ({', '.join(rep.datasets)})")
        if exp.recipe not in rep.recipes:
            raise SpecError(f"{key}.recipe: '{exp.recipe}' is not a key of 'recipes' ({', '.join(rep.recipes)})")
        for claim in exp.claims:
            if (claim.table, claim.model) not in claimable:
                raise SpecError(f"{key}.claims: no published row has table '{claim.table}' and model '{claim.model}'")
    for name in rep.recipes:
        for scale in SCALES:
            rep.recipe(name, scale)  # raises SpecError naming recipes.<name>.<scale>
