"""The workflow's plan: its configuration checked and normalised, and the resume guard of its long jobs.

`workflows/rules/common.smk` calls these while Snakemake parses the workflow. Every config
mistake becomes one `ConfigError` whose message is one line naming the key and the fix (the
Snakefile prints it and exits, so no traceback shows). Snakemake's `--config` parser hands
values inside lists and mappings over as strings (`seeds=[1]` gives `['1']`), so `normalise`
turns the integer-valued keys back into integers before the schema sees them.

`python -m nas_impl.plan resume-guard ...` runs before each resumable job (train, searches): a
checkpoint the workflow did not declare as an output survives a killed job, and the guard keeps
it only when it was written by the same job (same input files, same command-line settings);
otherwise it removes it, so that a job rerun because its inputs changed starts afresh instead of
resuming someone else's run.

Pure Python (no torch): the allowed keys and the replications' experiments are passed in.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = "workflows/schemas/config.schema.yaml"
RESUME_KEY = ".resume-key"  # in a run's folder: the fingerprint of the job that wrote its checkpoint
_INT = re.compile(r"^[+-]?\d+$")
_NULL = {"", "null", "none", "~"}


class ConfigError(ValueError):
    """A configuration mistake; the message is one line naming the key and the fix."""


# -- normalisation ---------------------------------------------------------------------------------
def _int_or_same(value: Any) -> Any:
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value.strip())
    return value


def normalise(config: dict[str, Any]) -> dict[str, Any]:
    """Undo what Snakemake's --config parser does to integer-valued keys (in place; returns config):
    `seeds=[1]` arrives as ['1'] (strings inside lists), `threads=null` as 'null'."""
    seeds = config.get("seeds")
    if isinstance(seeds, (list, tuple)):
        config["seeds"] = [_int_or_same(s) for s in seeds]
    elif isinstance(seeds, str) and _INT.match(seeds.strip()):
        config["seeds"] = [int(seeds.strip())]
    threads = config.get("threads")
    if isinstance(threads, str):
        config["threads"] = None if threads.strip().lower() in _NULL else _int_or_same(threads)
    return config


# -- schema ----------------------------------------------------------------------------------------
def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(known), n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = [repr(c) for c in close]
    return f" (did you mean {', '.join(quoted[:-1]) + ' or ' if len(quoted) > 1 else ''}{quoted[-1]}?)"


def _flow(value: Any) -> str:
    """A value as --config writes it: [0, 1], {epochs: 1}, smoke."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("...").strip()


def _example(key: str, sub: Mapping[str, Any]) -> str:
    examples = sub.get("examples") or []
    if not examples:
        return ""
    text = _flow(examples[0])
    if re.search(r"[\s\[\]{}:,'\"]", text):
        text = f"'{text}'"
    return f"; e.g. --config {key}={text}"


def schema_error(config: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """The first violation of `schema` as one line naming the config key and the fix, or None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(dict(config)))
    if not errors:
        return None
    properties = schema.get("properties", {})
    unknown = sorted(set(config) - set(properties))
    if unknown and schema.get("additionalProperties") is False:
        key = unknown[0]
        return (f"config: unknown key '{key}'{_suggest(key, properties)}; the keys are {', '.join(properties)} "
                f"(see {SCHEMA_FILE})")
    err = jsonschema.exceptions.best_match(errors)
    if not err.path:
        return f"config: {_one_line(err.message)} (see {SCHEMA_FILE})"
    key, rest = str(err.path[0]), list(err.path)[1:]
    where = key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
    sub = properties.get(key, {})
    what = f" ({sub['description']})" if sub.get("description") else ""
    return f"config '{where}': {_one_line(err.message)}{what}{_example(key, sub)}"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fill_defaults(config: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = json.loads(json.dumps(sub["default"]))
    return config


def check_schema(config: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise, validate and fill defaults; ConfigError (one line) on the first violation."""
    normalise(config)
    message = schema_error(config, schema)
    if message:
        raise ConfigError(message)
    return fill_defaults(config, schema)


# -- papers, experiments, recipe overrides ---------------------------------------------------------
def discover_replications(root: str | Path) -> list[str]:
    """The replications of the suite: every folder of `root` (replications/) with a replication.yaml.
    A new paper is added by adding its folder; no list of names to extend."""
    return sorted(p.parent.name for p in Path(root).glob("*/replication.yaml"))


def check_papers(papers: list[str], implemented: list[str]) -> list[str]:
    """The replications to run (all implemented ones when `papers` is empty)."""
    for paper in papers:
        if paper not in implemented:
            raise ConfigError(f"config 'papers': '{paper}' is not an implemented replication{_suggest(paper, implemented)}; "
                              f"implemented: {', '.join(implemented)} (or papers='[]' for all of them)")
    return list(papers) or list(implemented)


def check_experiments(requested: list[str], experiments: Mapping[str, Mapping[str, Iterable[str]]],
                      scale: str) -> None:
    """Every requested name must be an experiment of a selected paper that runs at this scale.
    `experiments`: paper -> {experiment name -> the scales it runs at}."""
    papers = ", ".join(experiments) or "none"
    for name in requested:
        owners = {paper: tuple(names[name]) for paper, names in experiments.items() if name in names}
        if not owners:
            known = sorted({n for names in experiments.values() for n in names})
            listing = f"; known: {', '.join(known)}" if len(known) <= 12 else \
                f"; the names are the keys of 'experiments' in replications/<paper>/replication.yaml"
            raise ConfigError(f"config 'experiments': '{name}' is not an experiment of the selected papers "
                              f"({papers}){_suggest(name, known)}{listing}")
        if not any(scale in scales for scales in owners.values()):
            runs = sorted({s for scales in owners.values() for s in scales})
            raise ConfigError(f"config 'experiments': '{name}' ({', '.join(owners)}) does not run at scale {scale} "
                              f"(only at {', '.join(runs)}): drop it, or set scale={runs[-1] if runs else 'paper'}")


def check_recipe_overrides(overrides: Mapping[str, Any], training_keys: Iterable[str],
                           method_keys: Mapping[str, Iterable[str]]) -> None:
    """Each key must be a training-recipe key or a search-recipe key of a method in use.
    `method_keys`: search method (of the selected papers) -> its own recipe keys."""
    training = set(training_keys)
    methods = {m: set(keys) for m, keys in method_keys.items()}
    allowed = training.union(*methods.values())
    for key in overrides:
        if key in allowed:
            continue
        elsewhere = "" if methods else " (the selected papers run no search)"
        searches = "".join(f"; {m} search keys: {', '.join(sorted(k))}" for m, k in sorted(methods.items()))
        raise ConfigError(f"config 'recipe_overrides': unknown recipe key '{key}'{_suggest(key, allowed)}{elsewhere}; "
                          f"training-recipe keys: {', '.join(sorted(training))}{searches}")


def overrides_for(overrides: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The overrides a recipe with these keys takes (a search key never reaches a training recipe)."""
    keys = set(keys)
    return {k: v for k, v in overrides.items() if k in keys}


def set_args(overrides: Mapping[str, Any]) -> str:
    """`--set key=value` arguments of `nasrepro recipe`; --config gives strings (passed through),
    a config file typed values (dumped as JSON, which YAML reads back)."""
    import shlex

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    return " ".join(f"--set {shlex.quote(f'{k}={text(v)}')}" for k, v in overrides.items())


def job_threads(threads: int | None, scale: str, defaults: Mapping[str, int]) -> int:
    """The intra-op threads of every training, search and evaluation job (fixed: not --cores)."""
    return int(threads) if threads is not None else int(defaults[scale])


# -- resume guard ----------------------------------------------------------------------------------
def _file_fingerprint(path: Path, ignore: frozenset[str]) -> bytes:
    """The file's bytes; for YAML/JSON with `ignore`, its parsed content without those top-level keys."""
    if not path.is_file():
        return b"<absent>"
    data = path.read_bytes()
    if ignore and path.suffix in (".yaml", ".yml", ".json"):
        parsed = yaml.safe_load(data)
        if isinstance(parsed, dict):
            parsed = {k: v for k, v in parsed.items() if k not in ignore}
        data = json.dumps(parsed, sort_keys=True, default=str).encode()
    return data


def resume_key(key_files: Iterable[str | Path], key_text: str = "", ignore: Iterable[str] = ()) -> str:
    """A fingerprint of what a job's checkpoint depends on beyond the checkpoint's own identity check."""
    ignore = frozenset(ignore)
    digest = hashlib.sha256()
    for path in key_files:
        digest.update(str(Path(path).name).encode() + b"\0")
        digest.update(hashlib.sha256(_file_fingerprint(Path(path), ignore)).digest())
    digest.update(b"\0" + key_text.encode())
    return digest.hexdigest()


def resume_guard(out_dir: str | Path, state_files: Iterable[str], key_files: Iterable[str | Path],
                 key_text: str = "", ignore: Iterable[str] = ()) -> str:
    """Keep OUT/<state_files> only if the job that wrote them had this fingerprint; record it.
    Returns one line for the job's log."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = resume_key(key_files, key_text, ignore)
    stamp = out_dir / RESUME_KEY
    previous = stamp.read_text().strip() if stamp.is_file() else None
    present = [name for name in state_files if (out_dir / name).exists()]
    if previous == key:
        message = f"resume guard: same job; {'resuming from ' + ', '.join(present) if present else 'no checkpoint yet'}"
    else:
        for name in present:
            (out_dir / name).unlink()
        why = "no record of the job that wrote it" if previous is None else "its inputs or settings changed"
        message = (f"resume guard: removed {', '.join(present)} ({why}); starting afresh" if present
                   else "resume guard: no checkpoint yet; starting afresh")
        tmp = stamp.with_name(f"{RESUME_KEY}.{os.getpid()}.partial")
        tmp.write_text(key + "\n")
        os.replace(tmp, stamp)
    return message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas_impl.plan", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("resume-guard", help="keep a run's checkpoint only if the same job wrote it")
    p.add_argument("--dir", required=True, help="the run's folder")
    p.add_argument("--state", action="append", required=True, help="a checkpoint file name (repeatable)")
    p.add_argument("--key-file", action="append", default=[], help="an input the checkpoint depends on (repeatable)")
    p.add_argument("--key", default="", help="the settings the checkpoint depends on, as text")
    p.add_argument("--ignore", action="append", default=[],
                   help="top-level key of the YAML/JSON key files that does not matter (repeatable)")
    args = parser.parse_args(argv)
    print(resume_guard(args.dir, args.state, args.key_file, args.key, args.ignore))
    return 0


if __name__ == "__main__":
    sys.exit(main())
