"""What every method's search recipe shares: a training `Recipe` for the super-network's weights
plus a frozen dataclass of the method's own keys, read from one mapping (values may carry a
source, as in Recipe) and written back as one."""

from __future__ import annotations

import dataclasses
from typing import Any

from nas_impl.errors import SpecError
from nas_impl.training.recipe import (
    Recipe, RecipeKeyError, check_types, recipe_from_dict, unknown_keys_error, unwrap_sources,
)


# Training keys no search step applies (the searches neither clip gradients nor distil from a
# trained teacher): a search recipe that sets them is refused rather than silently run without them.
NOT_APPLIED_BY_SEARCHES = ("grad_clip", "distill")


def split_search_recipe(raw: Any, origin: str, settings: type, not_applied: tuple[str, ...] = (),
                        applies: tuple[str, ...] = ()) -> tuple[Recipe, dict[str, Any]]:
    """(the weights' Recipe, the values of the `settings` dataclass's keys); unknown keys are errors,
    and so is a value other than the default for a training key the search does not apply
    (NOT_APPLIED_BY_SEARCHES, less the method's `applies`, and the method's `not_applied`)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: a search recipe must be a mapping, got {type(raw).__name__}")
    values, sources = unwrap_sources(dict(raw), origin)
    own = {f.name for f in dataclasses.fields(settings)}
    known = own | {f.name for f in dataclasses.fields(Recipe)} - {"sources"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise unknown_keys_error(origin, unknown, known, what="search recipe")
    method_values = {k: values.pop(k) for k in list(values) if k in own}
    weights = recipe_from_dict({**values, "sources": sources}, origin)
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe)}
    for key in tuple(k for k in NOT_APPLIED_BY_SEARCHES if k not in applies) + not_applied:
        if getattr(weights, key) != defaults[key]:
            raise RecipeKeyError(origin, (key,), f"search recipe key '{key}' = {getattr(weights, key)!r}: this "
                                 f"search does not apply it; remove the key (it applies to retraining recipes)")
    return weights, method_values


def check_settings(settings: Any, checks: list[tuple[tuple[str, ...], Any, str]]) -> None:
    """Raise for the first failed check of a settings dataclass: (keys involved, the one at fault
    first; a bool or a callable returning one; what the value must be)."""
    for keys, ok, expected in checks:
        if not (ok() if callable(ok) else ok):
            value = getattr(settings, keys[0])
            value = list(value) if isinstance(value, tuple) else value
            raise RecipeKeyError("", keys, f"search recipe key '{keys[0]}' = {value!r}: must be {expected}")


def build_settings(settings: type, values: dict[str, Any], origin: str) -> Any:
    """`settings(**values)`: every value of its field's type (a YAML `arch_lr: 1e-3` is a string),
    lists as tuples, and validation errors naming `origin` and the key."""
    check_types(settings, values, origin, what="search recipe key")
    tuples = {f.name for f in dataclasses.fields(settings) if str(f.type).startswith("tuple")}
    values = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in values.items()}
    try:
        return settings(**values)
    except RecipeKeyError as err:
        raise err.located(origin) from None
    except (SpecError, TypeError) as err:
        raise SpecError(f"{origin}: {err}") from None


def search_recipe_dict(weights: Recipe, settings: Any) -> dict[str, Any]:
    """One flat mapping (tuples as lists), as a search recipe file holds it."""
    own = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}
    return {**weights.to_dict(), **own, "sources": dict(weights.sources)}
