"""One registry of model families and named variants, and the single entry point `build_model`.

A *family* is a builder (usually a `SpecModel` subclass) plus a spec dataclass listing its keys.
A *variant* (model name such as `resnet56-cifar`) is a registered default spec of a family.
A *spec* is a plain dict with key `family`; YAML files hold the same dict. Every built model
answers `to_spec()` with the full normalised spec, and `build_model(model.to_spec())` rebuilds
the same network.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Union

import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.io import read_user_text, write_text_atomic
from nas_impl.models.spec import SpecProblem, did_you_mean, fields_dict, parse_fields

SpecLike = Union[Mapping[str, Any], str, os.PathLike]


class SpecModel(nn.Module):
    """Base class of family models: holds its spec dataclass and serialises it."""

    family: ClassVar[str] = ""
    Spec: ClassVar[type]

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.spec = spec

    def to_spec(self) -> dict[str, Any]:
        return {"family": self.family, **fields_dict(self.spec)}


_FAMILIES: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {}
_MODELS: dict[str, dict[str, Any]] = {}


def register_family(name: str, spec: type | None = None) -> Callable:
    """Decorator: register a builder (a `SpecModel` subclass, or a function taking the spec
    dataclass `spec`) under family `name`."""

    def wrap(builder: Any) -> Any:
        spec_cls = spec if spec is not None else getattr(builder, "Spec", None)
        if spec_cls is None:
            raise TypeError(f"family '{name}': give spec=<dataclass> or define builder.Spec")
        if name in _FAMILIES:
            raise ValueError(f"family '{name}' is already registered")
        if isinstance(builder, type) and issubclass(builder, SpecModel):
            builder.family = name
        _FAMILIES[name] = (spec_cls, builder)
        return builder

    return wrap


def register_model(name: str, **spec: Any) -> None:
    """Register a named variant: `register_model("resnet20-cifar", family="resnet-cifar", depth=20)`."""
    if name in _MODELS:
        raise ValueError(f"model '{name}' is already registered")
    _MODELS[name] = dict(spec)


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered variant names, sorted; `pattern` is a shell wildcard such as `'resnet*'`."""
    return sorted(n for n in _MODELS if pattern is None or fnmatch.fnmatch(n, pattern))


def _unknown_model(name: str, extra: str = "") -> SpecError:
    hint = did_you_mean(name, _MODELS)
    return SpecError(f"unknown model '{name}'{hint}: known models: " + ", ".join(list_models()) + extra)


def _resolve(spec: SpecLike) -> tuple[dict[str, Any], str]:
    """Return (raw spec dict, where it came from)."""
    if isinstance(spec, Mapping):
        return dict(spec), ""
    if isinstance(spec, (str, os.PathLike)):
        name = os.fspath(spec)
        if name in _MODELS:
            return dict(_MODELS[name]), f"model '{name}'"
        if Path(name).suffix in (".yaml", ".yml") or Path(name).exists():
            return load_spec(name), f"file {name}"
        raise _unknown_model(name, "; or give a path to a YAML spec file")
    raise SpecError(f"a spec must be a dict, a model name or a YAML path, not {type(spec).__name__}")


def _parse(raw: dict[str, Any], where: str) -> tuple[str, Any]:
    try:
        raw = dict(raw)
        family = raw.pop("family", None)
        if family is None:
            raise SpecProblem("missing key 'family'", "add 'family: <name>', one of " + ", ".join(list_families()))
        if not isinstance(family, str) or family not in _FAMILIES:
            raise SpecProblem(
                f"unknown family '{family}'{did_you_mean(str(family), _FAMILIES)}",
                "known families: " + ", ".join(list_families()),
            )
        return family, parse_fields(_FAMILIES[family][0], raw, family)
    except SpecProblem as err:
        raise err.at(where) from None


def normalize_spec(spec: SpecLike, **overrides: Any) -> dict[str, Any]:
    """Validate a spec and fill in every default, without building the network."""
    raw, where = _resolve(spec)
    family, parsed = _parse({**raw, **overrides}, where)
    return {"family": family, **fields_dict(parsed)}


def parse_spec(spec: SpecLike) -> Any:
    """The validated spec dataclass (its family's keys and what they imply, e.g. `channel_list()`)."""
    raw, where = _resolve(spec)
    return _parse(raw, where)[1]


def natural_input(spec: SpecLike) -> tuple[int, ...]:
    """The input a spec's network is built for: (C, H, W) images, 32x32 for CIFAR families and
    `stem: cifar`, 224x224 for ImageNet families, `in_channels` channels; (seq_len,) tokens for a
    language model."""
    return tuple(parse_spec(spec).natural_input)


def family_class(spec: SpecLike) -> Any:
    """The builder registered for the spec's family (its class attributes, e.g. `task`)."""
    raw, where = _resolve(spec)
    return _FAMILIES[_parse(raw, where)[0]][1]


def spec_for(name: str) -> dict[str, Any]:
    """The full normalised spec of a registered variant."""
    if name not in _MODELS:
        raise _unknown_model(name)
    return normalize_spec(name)


def build_model(spec: SpecLike, **overrides: Any) -> nn.Module:
    """Build a network from a spec dict, a variant name or a YAML spec file.

    Keyword overrides replace spec keys: `build_model("resnet56-cifar", num_classes=100)`.
    """
    raw, where = _resolve(spec)
    family, parsed = _parse({**raw, **overrides}, where)
    try:
        model = _FAMILIES[family][1](parsed)
    except SpecProblem as err:
        raise err.at(where) from None
    if not hasattr(model, "to_spec"):  # function builders: attach the serialiser
        full = {"family": family, **fields_dict(parsed)}
        model.to_spec = lambda: dict(full)
    return model


def load_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML spec file (not yet validated: `build_model` / `normalize_spec` do that)."""
    path = Path(path)
    text = read_user_text(path, "spec file", "check the path, or use a model name from list_models()")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"spec file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {path} must hold a mapping with key 'family', not {type(data).__name__}")
    return data


class _SpecDumper(yaml.SafeDumper):
    """One key per line; channel lists inline."""


_SpecDumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
)


def save_spec(spec: SpecLike | nn.Module, path: str | os.PathLike) -> Path:
    """Validate and write the normalised spec as YAML, atomically (temporary file, then rename)."""
    if isinstance(spec, nn.Module):
        spec = spec.to_spec()
    full = normalize_spec(spec)
    path = Path(path)
    write_text_atomic(path, yaml.dump(full, Dumper=_SpecDumper, sort_keys=False, width=100))
    return path
