"""What every method's search recipe shares: a training `Recipe` for the super-network's weights
plus a frozen dataclass of the method's own keys, read from one mapping (values may carry a
source, as in Recipe) and written back as one."""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_impl.errors import SpecError
from nas_impl.training.recipe import Recipe, recipe_from_dict, unwrap_sources


def split_search_recipe(raw: Any, origin: str, settings: type) -> tuple[Recipe, dict[str, Any]]:
    """(the weights' Recipe, the values of the `settings` dataclass's keys); unknown keys are errors."""
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: a search recipe must be a mapping, got {type(raw).__name__}")
    values, sources = unwrap_sources(dict(raw))
    own = {f.name for f in dataclasses.fields(settings)}
    known = own | {f.name for f in dataclasses.fields(Recipe)} - {"sources"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"{origin}: unknown search recipe key(s) {unknown}; allowed keys: {sorted(known)}")
    method_values = {k: values.pop(k) for k in list(values) if k in own}
    return recipe_from_dict({**values, "sources": sources}, origin), method_values


def build_settings(settings: type, values: dict[str, Any], origin: str) -> Any:
    """`settings(**values)`, naming `origin` in its validation errors."""
    try:
        return settings(**values)
    except (SpecError, TypeError) as err:
        raise SpecError(f"{origin}: {err}") from None


def search_recipe_dict(weights: Recipe, settings: Any) -> dict[str, Any]:
    """One flat mapping (tuples as lists), as a search recipe file holds it."""
    own = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}
    return {**weights.to_dict(), **own, "sources": dict(weights.sources)}
