"""Search methods: one subpackage per paper behind one interface, `SearchMethod`.

A method validates its search recipes (`recipe_from_dict`, used by the replication manifests
and `nasrepro recipe --search`) and runs one search (`run`, used by `nasrepro search`), which
writes `arch.yaml` and `search.json` (and its logs) into its output directory, in one go or
stage by stage (AutoSlim: `supernet`, then `slim`).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from nas_impl.errors import NasReproError

# name -> package, imported on first use: its `method` module defines METHOD (and pulls in torch and
# the models); its `recipe` module, `search_recipe_from_dict` alone (torch-free: manifests and
# `nasrepro recipe` validate search recipes without importing torch).
_PACKAGES = {"autoslim": "nas_impl.methods.autoslim", "tas": "nas_impl.methods.tas"}


@dataclass(frozen=True)
class SearchMethod:
    name: str
    recipe_from_dict: Callable[..., Any]  # (raw mapping, origin) -> validated search recipe
    run: Callable[..., dict[str, Any]]  # (base_spec, recipe, dataset, out_dir, *, seed, device, data_root, resume, stop_after, record[, stage])
    # Parts a workflow may run one at a time (`run(..., stage=name)`); one stage: run takes no `stage`.
    stages: tuple[str, ...] = ("search",)


def method_names() -> list[str]:
    return sorted(_PACKAGES)


def get_method(name: str) -> SearchMethod:
    return importlib.import_module(f"{_package(name)}.method").METHOD


def search_recipe_parser(name: str) -> Callable[..., Any]:
    """The method's search-recipe validator, (raw mapping, origin) -> recipe, without importing torch."""
    return importlib.import_module(f"{_package(name)}.recipe").search_recipe_from_dict


def method_keys(name: str) -> frozenset[str]:
    """The keys a method adds to a search recipe (its recipe module's SETTINGS dataclass), without torch."""
    settings = importlib.import_module(f"{_package(name)}.recipe").SETTINGS
    return frozenset(f.name for f in dataclasses.fields(settings))


def _package(name: str) -> str:
    if name not in _PACKAGES:
        raise NasReproError(f"unknown search method '{name}'; known: {', '.join(method_names())}")
    return _PACKAGES[name]
