"""Search methods: one subpackage per paper behind one interface (`nas_impl.methods.interface`).

A method's `recipe` module holds its torch-free `INFO` (`MethodInfo`: recipe keys and validation,
targets, stages), read by the manifests, the workflow and `nasrepro recipe`; its `work` module
(torch-free too, referenced by `INFO.search_work`) counts what its searches cost, for `nasrepro
cost`; its `method` module holds `METHOD`, the `SearchMethod` that `nasrepro search` runs, stage by
stage.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Callable

from nas_impl.errors import NasReproError

if TYPE_CHECKING:
    from nas_impl.methods.interface import MethodInfo, SearchMethod

# The registry, the one list of method names: name -> package, imported on first use.
_PACKAGES = {"autoshrink": "nas_impl.methods.autoshrink", "autoslim": "nas_impl.methods.autoslim",
             "memnas": "nas_impl.methods.memnas", "proxylessnas": "nas_impl.methods.proxylessnas",
             "tas": "nas_impl.methods.tas"}


def method_names() -> list[str]:
    return sorted(_PACKAGES)


def method_info(name: str) -> MethodInfo:
    """The method's description, without importing torch."""
    return importlib.import_module(f"{_package(name)}.recipe").INFO


def get_method(name: str) -> SearchMethod:
    return importlib.import_module(f"{_package(name)}.method").METHOD


def search_recipe_parser(name: str) -> Callable[..., Any]:
    """The method's search-recipe validator, (raw mapping, origin) -> recipe, without importing torch."""
    return method_info(name).recipe_from_dict


def method_keys(name: str) -> frozenset[str]:
    """The keys a method adds to a search recipe (its settings dataclass), without torch."""
    return frozenset(f.name for f in dataclasses.fields(method_info(name).settings))


def not_applied_keys(name: str) -> frozenset[str]:
    """Training-recipe keys a method's search recipe refuses: its search steps do not apply them."""
    from nas_impl.methods.search_recipe import NOT_APPLIED_BY_SEARCHES

    info = method_info(name)
    return frozenset(NOT_APPLIED_BY_SEARCHES + info.not_applied) - frozenset(info.applies)


def _package(name: str) -> str:
    if name not in _PACKAGES:
        raise NasReproError(f"unknown search method '{name}'; known: {', '.join(method_names())}")
    return _PACKAGES[name]
