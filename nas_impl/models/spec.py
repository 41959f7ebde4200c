"""Typed architecture specs: one dataclass per family, checked key by key.

A family declares its keys as a dataclass (field type = allowed type, field default = the
default). `parse_fields` turns a plain dict (from YAML or Python) into that dataclass and
rejects unknown keys and wrong types; the dataclass's optional `check()` then validates values
and relations between keys (and may fill in defaults that depend on other keys). Problems are
raised as `SpecProblem(problem, fix)`; the registry adds where the spec came from (file or
model name) before the user sees it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

from nas_impl.errors import SpecError


class SpecProblem(SpecError):
    """A SpecError that knows its parts, so a caller can insert where the spec came from."""

    def __init__(self, problem: str, fix: str, where: str = "") -> None:
        self.problem, self.fix, self.where = problem, fix, where
        place = f" ({where})" if where else ""
        super().__init__(f"{problem} in spec{place}: {fix}")

    def at(self, where: str) -> SpecProblem:
        return SpecProblem(self.problem, self.fix, self.where or where)


# The natural input sizes of the image families: what a spec is built for, and where its MACs and
# memory are counted unless another input is asked for.
CIFAR_SIZE = 32
IMAGENET_SIZE = 224


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe(a) for a in inner) + " or null"
    if origin is list:
        plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
        return f"a list of {plural.get(args[0], _describe(args[0]))}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, value converted to the field type)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return value in args and type(value) in {type(a) for a in args}, value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return type(None) in args, None
        return _coerce(value, next(a for a in args if a is not type(None)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return False, value
        items = [_coerce(v, args[0]) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if tp is int:
        return _is_int(value), value
    if tp is float:
        ok = _is_int(value) or isinstance(value, float)
        return ok, float(value) if ok else value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported spec field type {tp!r}")


def parse_fields(cls: type, raw: dict[str, Any], family: str) -> Any:
    """Build the spec dataclass `cls` from `raw` (without the `family` key)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in hints:
            raise SpecProblem(
                f"unknown key '{key}' for family '{family}'{did_you_mean(str(key), names)}",
                "allowed keys: family, " + ", ".join(names),
            )
        ok, converted = _coerce(value, hints[key])
        if not ok:
            raise SpecProblem(_show(key, value, hints[key]), f"expected {_describe(hints[key])}")
        values[key] = converted
    spec = cls(**values)
    if hasattr(spec, "check"):
        spec.check()
    return spec


def _show(key: str, value: Any, tp: Any) -> str:
    """Name the offending value; for a list, its first bad entry rather than the whole list."""
    item = next((a for a in typing.get_args(tp) if typing.get_origin(a) is list), tp)
    if typing.get_origin(item) is list and isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if not _coerce(v, typing.get_args(item)[0])[0]:
                return f"key '{key}' entry {i} = {v!r}"
    return f"key '{key}' = {value!r}"


def fields_dict(spec: Any) -> dict[str, Any]:
    """The dataclass as a plain dict of YAML-safe values (lists, not tuples)."""
    return {f.name: _plain(getattr(spec, f.name)) for f in dataclasses.fields(spec)}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def require(condition: bool, problem: str, fix: str) -> None:
    if not condition:
        raise SpecProblem(problem, fix)


def require_positive(**values: int) -> None:
    for key, value in values.items():
        require(value >= 1, f"key '{key}' = {value}", "expected a positive integer")


def require_positive_list(key: str, values: list[int] | None) -> None:
    for i, value in enumerate(values or []):
        require(value >= 1, f"key '{key}' entry {i} = {value}", "expected a positive integer")
