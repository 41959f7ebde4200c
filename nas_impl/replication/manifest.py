"""Replication manifests: `replications/<paper>/{replication.yaml, published.csv, archs/}`.

`load_replication` validates the YAML against `replication.schema.yaml` (filling its defaults),
then checks what a schema cannot: every experiment's arch file, dataset and recipe exist,
every recipe is a valid Recipe, and every claim names a published row.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from nas_impl.errors import SpecError
from nas_impl.io import read_user_text
from nas_impl.replication.published import PublishedRow, load_published
from nas_impl.data.augment_spec import imagenet_only_keys, imagenet_only_message
from nas_impl.training.recipe import Recipe, RecipeKeyError, recipe_from_dict, unwrap_sources

SCALES = ("smoke", "reduced", "paper")
DEFAULT_SEEDS = {"smoke": [0], "reduced": [0], "paper": [0, 1, 2]}
SCHEMA_PATH = Path(__file__).with_name("replication.schema.yaml")


@dataclass(frozen=True)
class Claim:
    table: str
    model: str
    label: str = ""


@dataclass(frozen=True)
class Search:
    name: str
    method: str
    arch: str  # the unpruned network searched over
    dataset: str
    recipe: str
    settings: dict[str, Any]
    scales: tuple[str, ...]
    resources: dict[str, dict[str, int]] = field(default_factory=dict)  # scale -> {gpu, mem_mb, runtime}


@dataclass(frozen=True)
class Experiment:
    name: str
    arch: str | None  # archs/<arch>.yaml, or None for a searched shape
    dataset: str
    recipe: str
    scales: tuple[str, ...]
    claims: tuple[Claim, ...]
    search: str | None = None
    search_target: str | None = None  # which of the search's recorded shapes (AutoSlim targets)
    teacher: str | None = None
    baseline: str | None = None
    train_scales: tuple[str, ...] | None = None
    resources: dict[str, dict[str, int]] = field(default_factory=dict)  # scale -> {gpu, mem_mb, runtime}

    def trained_at(self, scale: str) -> bool:
        return scale in (self.train_scales if self.train_scales is not None else self.scales)


@dataclass
class Replication:
    root: Path
    paper: str
    title: str
    accuracy_scales: tuple[str, ...]
    accuracy_tolerance: float
    architecture_tolerance: float
    search_tolerance: float
    perplexity_tolerance: float
    seeds: dict[str, list[int]]
    datasets: dict[str, dict[str, str]]
    recipes: dict[str, dict[str, dict[str, Any]]]
    experiments: dict[str, Experiment]
    published: list[PublishedRow] = field(repr=False)
    search_scales: tuple[str, ...] = ("reduced", "paper")
    search_recipes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    searches: dict[str, Search] = field(default_factory=dict)

    def arch_path(self, experiment: str) -> Path:
        """The reference spec of an experiment; for a searched one, the network searched over."""
        exp = self.experiments[experiment]
        return self.root / "archs" / f"{exp.arch}.yaml" if exp.search is None else self.search_arch_path(exp.search)

    def search_arch_path(self, search: str) -> Path:
        return self.root / "archs" / f"{self.searches[search].arch}.yaml"

    def search_recipe(self, search: str, scale: str, overrides: dict[str, Any] | None = None):
        """The search recipe of one scale with the search's own values (`set`) and `overrides` applied."""
        from nas_impl.methods import search_recipe_parser

        entry = self.searches[search]
        raw = {**self.search_recipes[entry.recipe][scale], **entry.settings, **(overrides or {})}
        origin = f"{self.root / 'replication.yaml'}: searches.{search} (search_recipes.{entry.recipe}.{scale})"
        try:
            return search_recipe_parser(entry.method)(raw, origin)
        except RecipeKeyError as err:
            raise blame_overrides(err, overrides) from None

    def run_dataset(self, experiment: str, scale: str) -> str:
        return self.datasets[self.experiments[experiment].dataset][scale]

    def search_targets(self, search: str) -> list[str]:
        """The targets the search records at every one of its scales (its method's `targets`)."""
        from nas_impl.methods import method_info

        entry = self.searches[search]
        targets = method_info(entry.method).targets
        lists = [set(targets(self.search_recipe(search, scale))) for scale in entry.scales]
        return sorted(set.intersection(*lists)) if lists else []

    def search_run_dataset(self, search: str, scale: str) -> str:
        return self.datasets[self.searches[search].dataset][scale]

    def recipe(self, name: str, scale: str, overrides: dict[str, Any] | None = None) -> Recipe:
        """The recipe of one scale with `overrides` (`nasrepro recipe --set`) applied; an error that an
        override causes names the --set, others the manifest's key."""
        raw = {**self.recipes[name][scale], **(overrides or {})}
        try:
            return recipe_from_dict(raw, origin=f"{self.root / 'replication.yaml'}: recipes.{name}.{scale}")
        except RecipeKeyError as err:
            raise blame_overrides(err, overrides) from None

    def experiments_at(self, scale: str) -> list[str]:
        return [name for name, exp in self.experiments.items() if scale in exp.scales]

    @property
    def tables(self) -> list[str]:
        return sorted({row.table for row in self.published})


def override_text(key: str, value: Any) -> str:
    """An override as the user wrote it: `--set key=value`."""
    return f"--set {key}={value if isinstance(value, str) else json.dumps(value)}"


def blame_overrides(err: RecipeKeyError, overrides: dict[str, Any] | None) -> RecipeKeyError:
    """`err` with the --set options among its keys as its origin (they caused it), else `err` itself."""
    culprits = [key for key in err.keys if key in (overrides or {})]
    if not culprits:
        return err
    origin = ", ".join(override_text(key, overrides[key]) for key in culprits)
    if err.keys[0] in culprits:
        return RecipeKeyError(origin, err.keys, err.detail)
    return RecipeKeyError(origin, err.keys, f"conflicts with {err.origin}: {err.detail}; "
                                            f"set '{err.keys[0]}' too (another --set)")


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


# Which schema error to report first among those at one place: an unknown key (often a typo) explains
# the others (e.g. a misspelt required key).
_FIRST = {"additionalProperties": 0, "required": 1}


def validate_manifest(raw: Any, origin: str) -> dict[str, Any]:
    errors = sorted(_validator().iter_errors(raw),
                    key=lambda e: ([str(p) for p in e.absolute_path], _FIRST.get(e.validator, 2)))
    if errors:
        raise SpecError(f"{origin}: {schema_message(errors[0])}")
    _fill_defaults(raw, _validator().schema)
    return raw


def _closest(word: str, options: list[str]) -> str | None:
    """The likeliest intended key: a transposition ('lable' -> 'label') before other near misses."""
    close = difflib.get_close_matches(word, options, n=3)
    transposed = [c for c in close if sorted(c) == sorted(word)]
    return (transposed or close or [None])[0]


def schema_message(err: jsonschema.ValidationError) -> str:
    """One line for a schema error: the key path, what is wrong and the fix."""
    path = [str(p) for p in err.absolute_path]
    where = ".".join(path)
    at = f"in '{where}'" if path else "at the top level"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list(err.schema.get("properties", {}))
        patterns = list(err.schema.get("patternProperties", {}))
        extra = [str(k) for k in err.instance if k not in allowed and not any(re.search(p, str(k)) for p in patterns)]
        guess = _closest(extra[0], allowed) if extra else None
        hint = f" (did you mean '{guess}'?)" if guess else ""
        anchors = "; keys starting with x- hold YAML anchors" if "^x-" in patterns else ""
        return (f"unknown key '{extra[0] if extra else '?'}' {at}{hint}; allowed: {', '.join(allowed)}{anchors}"
                if allowed else f"{at}: {err.message}")
    if err.validator == "required":
        missing = [k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance]
        return f"key '{missing[0] if missing else err.message}' is missing {at}; add it"
    if err.validator == "oneOf" and all(set(sub) == {"required"} for sub in err.validator_value):
        names = [sub["required"][0] for sub in err.validator_value]
        present = [n for n in names if isinstance(err.instance, dict) and n in err.instance]
        choice = " or ".join(f"'{n}'" for n in names)
        state = f"has {' and '.join(repr(n) for n in present)}" if present else "has neither"
        return f"'{where}' {state}: give exactly one of {choice}"
    if "propertyNames" in err.schema_path:
        return f"name {err.instance!r} {at} may hold only letters, digits, '_', '.' and '-': rename it"
    return f"key '{where or '(top level)'}': {err.message}"


def load_replication(root: str | Path) -> Replication:
    root = Path(root)
    path = root / "replication.yaml"
    text = read_user_text(path, "manifest", "a replication folder needs replication.yaml, published.csv and archs/")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    raw = validate_manifest(raw, str(path))
    csv_path = root / "published.csv"
    if csv_path.exists():  # an unreadable or non-UTF-8 file: one clear message
        read_user_text(csv_path, "published table", "every replication needs a published.csv")
    published = load_published(csv_path)
    replication = Replication(
        root=root,
        paper=root.resolve().name,  # the folder names the paper: a copied folder is a new replication
        title=raw["title"],
        accuracy_scales=tuple(raw["accuracy_scales"]),
        accuracy_tolerance=raw["tolerances"]["accuracy"],
        architecture_tolerance=raw["tolerances"]["architecture"],
        search_tolerance=raw["tolerances"]["search"],
        perplexity_tolerance=raw["tolerances"]["perplexity"],
        seeds={scale: raw["seeds"].get(scale, DEFAULT_SEEDS[scale]) for scale in SCALES},
        datasets=raw["datasets"],
        recipes=raw["recipes"],
        experiments={
            name: Experiment(name, e.get("arch"), e["dataset"], e["recipe"], tuple(e["scales"]),
                             tuple(Claim(c["table"], c["model"], c.get("label", "")) for c in e["claims"]),
                             search=e.get("search"), search_target=e.get("search_target"),
                             teacher=e.get("teacher"), baseline=e.get("baseline"),
                             train_scales=tuple(e["train_scales"]) if "train_scales" in e else None,
                             resources=e.get("resources", {}))
            for name, e in raw["experiments"].items()
        },
        published=published,
        search_scales=tuple(raw["search_scales"]),
        search_recipes=raw.get("search_recipes", {}),
        searches={
            name: Search(name, e["method"], e["arch"], e["dataset"], e["recipe"], e["set"], tuple(e["scales"]),
                         e.get("resources", {}))
            for name, e in raw.get("searches", {}).items()
        },
    )
    _check_references(replication, path)
    return replication


def _check_references(rep: Replication, path: Path) -> None:
    claimable = {(row.table, row.model) for row in rep.published}
    from nas_impl.methods import method_names

    for name, entry in rep.searches.items():
        key = f"{path}: searches.{name}"
        if entry.method not in method_names():
            hint = _closest(entry.method, method_names())
            raise SpecError(f"{key}.method: unknown search method '{entry.method}'"
                            + (f" (did you mean '{hint}'?)" if hint else "") + f"; known: {', '.join(method_names())}")
        if not rep.search_arch_path(name).is_file():
            raise SpecError(f"{key}.arch: {rep.search_arch_path(name)} does not exist; add the spec under archs/")
        if entry.dataset not in rep.datasets:
            raise SpecError(f"{key}.dataset: '{entry.dataset}' is not a key of 'datasets' ({', '.join(rep.datasets)})")
        if entry.recipe not in rep.search_recipes:
            raise SpecError(f"{key}.recipe: '{entry.recipe}' is not a key of 'search_recipes' "
                            f"({', '.join(rep.search_recipes) or 'none defined'})")
        for scale in SCALES:
            rep.search_recipe(name, scale)  # raises SpecError naming the search and recipe
    for name, exp in rep.experiments.items():
        key = f"{path}: experiments.{name}"
        if exp.search is not None:
            if exp.search not in rep.searches:
                raise SpecError(f"{key}.search: '{exp.search}' is not a key of 'searches' ({', '.join(rep.searches)})")
            missing = sorted(set(exp.scales) - set(rep.searches[exp.search].scales))
            if missing:
                raise SpecError(f"{key}.scales: search '{exp.search}' does not run at {missing}")
            targets = rep.search_targets(exp.search)  # without a search_target: the shape the search selects
            if exp.search_target is not None and exp.search_target not in targets:
                raise SpecError(f"{key}.search_target: '{exp.search_target}' is not a target of search "
                                f"'{exp.search}' at every scale ({', '.join(targets)})")
        elif exp.search_target is not None:
            raise SpecError(f"{key}.search_target: only an experiment with a 'search' has a search target")
        for role in ("teacher", "baseline"):
            other = getattr(exp, role)
            if other is None:
                continue
            if other not in rep.experiments or other == name:
                raise SpecError(f"{key}.{role}: '{other}' is not another experiment of this replication")
            target = rep.experiments[other]
            needed = [s for s in exp.scales
                      if s not in target.scales or (exp.trained_at(s) and not target.trained_at(s))]
            if needed:
                raise SpecError(f"{key}.{role}: experiment '{other}' does not run (or is not trained) at {needed}, "
                                f"where '{name}' needs it")
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
    _check_imagenet_only_augmentation(rep, path)


def _check_imagenet_only_augmentation(rep: Replication, path: Path) -> None:
    """A recipe that sets ImageNet-only augment keys (color_jitter, lighting) may only train on
    ImageNet: at a scale where its dataset stands in for ImageNet (smoke's Fashion-MNIST) they
    would fail the job; say so now, naming the recipe and who trains with it."""
    uses = [(f"recipes.{exp.recipe}.{scale}", f"experiment '{name}'", rep.run_dataset(name, scale),
             scale, rep.recipe(exp.recipe, scale).augment)
            for name, exp in rep.experiments.items() for scale in exp.scales if exp.trained_at(scale)]
    for name, entry in rep.searches.items():
        for scale in entry.scales:
            raw, _ = unwrap_sources({**rep.search_recipes[entry.recipe][scale], **entry.settings})
            uses.append((f"search_recipes.{entry.recipe}.{scale}", f"search '{name}'",
                         rep.search_run_dataset(name, scale), scale, raw.get("augment", {})))
    for where, user, dataset, scale, augment in uses:
        keys = imagenet_only_keys(augment)
        if keys and dataset != "imagenet":  # the one dataset read by the folder pipeline (run_data)
            raise SpecError(f"{path}: {where}: " + imagenet_only_message(
                keys, f"{user} trains it at {scale} scale on dataset '{dataset}', which"))
