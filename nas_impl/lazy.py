"""Package attributes imported on first use, so that importing a package for one light name
(a recipe, a table writer) does not pull in torch or matplotlib with the rest."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_attributes(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `where[name]` (a submodule of `package`) on first access.
    A name may not be its submodule's name: importing the submodule binds that name to the module."""
    clashes = [name for name, module in where.items() if name == module.split(".")[-1]]
    if clashes:
        raise ValueError(f"{package}: lazy names {clashes} equal their submodules' names; import them from there")

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        # Cached on the package: later lookups skip this function, and a name shared with a submodule
        # (replication.regress) stays the function, not the module the import bound to it.
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
