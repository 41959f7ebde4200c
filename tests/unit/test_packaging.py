"""The pins the tests run with (requirements/constraints.txt) agree with environment.yml and pyproject."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements/constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def direct_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return [Requirement(r) for r in reqs]


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {canonical(n): v for n, v in (line.split("==") for line in pip if "==" in line)}


def test_every_direct_requirement_is_pinned_and_within_its_range():
    pins = constraints()
    for req in direct_requirements():
        name = canonical(req.name)
        assert name in pins, f"{req.name} is not pinned in requirements/constraints.txt (run make lock)"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} violates pyproject's {req}"


def test_environment_yml_lists_the_same_packages_and_versions():
    pins, env = constraints(), environment_pins()
    direct = {canonical(r.name) for r in direct_requirements()}
    assert set(env) == direct, f"environment.yml differs from pyproject: {sorted(set(env) ^ direct)}"
    for name, version in env.items():
        assert pins[name] == version, f"environment.yml pins {name}=={version}, constraints.txt {pins[name]}"


def test_installed_versions_are_the_pinned_ones():
    from importlib.metadata import version

    pins = constraints()
    for req in direct_requirements():
        installed = version(req.name).split("+")[0]
        assert installed == pins[canonical(req.name)], f"{req.name} {installed} installed, {pins[canonical(req.name)]} pinned"
