"""Verbs that produce one run's files: prepare-data, arch, recipe, train, evaluate, metrics."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from nas_impl.errors import NasReproError
from nas_impl.io import write_json_atomic, write_text_atomic


def prepare_data(args: argparse.Namespace) -> dict:
    """Find a dataset and verify it (checksums, and for ImageNet the image counts); a summary."""
    from nas_impl import data

    start = time.perf_counter()
    if args.dataset == "ptb":
        ptb = data.load_ptb(args.data_root)  # verifies the md5s; every valid/test word is in the vocabulary
        return {
            "dataset": "ptb",
            "tokens": {"train": len(ptb.train), "valid": len(ptb.valid), "test": len(ptb.test)},
            "vocab_size": len(ptb.vocab),
            "verify_s": round(time.perf_counter() - start, 3),
        }
    if args.dataset == "imagenet":  # too large to load: its folders are counted (and SHA256SUMS verified)
        folders = data.load_imagenet(args.data_root)
        return {
            "dataset": "imagenet",
            "train_images": folders.train_size,
            "test_images": folders.val_size,
            "num_classes": folders.num_classes,
            "input_size": list(data.DATASET_INFO["imagenet"].input_size),
            "mean": list(folders.mean),
            "std": list(folders.std),
            "verify_s": round(time.perf_counter() - start, 3),
        }
    ds = data.load_dataset(args.dataset, root=args.data_root)  # verifies every checksum
    return {
        "dataset": args.dataset,
        "train_images": len(ds.train_y),
        "test_images": len(ds.test_y),
        "num_classes": ds.num_classes,
        "input_size": list(ds.input_size),
        "mean": list(ds.mean),
        "std": list(ds.std),
        "verify_s": round(time.perf_counter() - start, 3),
    }


def arch(args: argparse.Namespace) -> dict:
    """An experiment's reference architecture, normalised, with the head of the paper's dataset
    (and, with --metrics-out, its architecture metrics at the paper's input size)."""
    from nas_impl.models import save_spec
    from nas_impl.replication import load_replication

    rep = load_replication(args.replication)
    experiment = rep.experiments[_experiment(rep, args.experiment)]
    if (experiment.search is None) != (args.searched is None):
        need = f"--searched (the arch.yaml of search '{experiment.search}')" if experiment.search else "no --searched"
        raise NasReproError(f"experiment '{experiment.name}' needs {need}")
    source = args.searched or rep.arch_path(experiment.name)
    spec = _experiment_spec(experiment, source)
    measured = _arch_metrics(spec, experiment.dataset, f"experiment '{experiment.name}' ({source})") if args.metrics_out else None
    save_spec(spec, args.out)
    if measured is not None:
        write_json_atomic(args.metrics_out, measured | {"spec": str(args.out)})
    target = f" (target {experiment.search_target})" if experiment.search_target else ""
    return {"experiment": experiment.name, "arch": str(args.out), "from": f"{source}{target}", "family": spec["family"]}


def archs(args: argparse.Namespace) -> dict:
    """Every run folder's arch.yaml and arch_metrics.json of experiments with a reference spec, in one
    process: metrics are counted once per distinct spec and input, and torch is imported once."""
    from nas_impl.models import save_spec
    from nas_impl.replication import load_replication

    rep = load_replication(args.replication)
    measured: dict[tuple[str, str], dict] = {}
    written = []
    for name in args.experiment:
        experiment = rep.experiments[_experiment(rep, name)]
        if experiment.search is not None:
            raise NasReproError(f"experiment '{name}' takes the shape its search found: write it with `nasrepro arch "
                                "--searched`, not `nasrepro archs`")
        spec = _experiment_spec(experiment, rep.arch_path(name))
        key = (json.dumps(spec, sort_keys=True), experiment.dataset)
        if key not in measured:
            measured[key] = _arch_metrics(spec, experiment.dataset, f"experiment '{name}' ({rep.arch_path(name)})")
        for seed in args.seed:
            folder = Path(args.results) / name / f"seed{seed}"
            save_spec(spec, folder / "arch.yaml")
            write_json_atomic(folder / "arch_metrics.json", measured[key] | {"spec": str(folder / "arch.yaml")})
            written.append(str(folder))
    return {"replication": rep.paper, "runs": len(written), "distinct_architectures": len(measured)}


def _experiment_spec(experiment, source: str | Path) -> dict[str, Any]:
    """The experiment's spec fitted to its paper dataset (image head and stem, or vocabulary)."""
    from nas_impl.models import normalize_spec
    from nas_impl.tasks import task_for_dataset

    task = task_for_dataset(experiment.dataset)
    raw = source if experiment.search_target is None else searched_target_spec(Path(source), experiment.search_target)
    spec = task.check_network(normalize_spec(raw), f"experiment '{experiment.name}' ({source})", experiment.dataset)
    classes, input_size = task.dataset_shape(experiment.dataset, spec)
    return normalize_spec(task.adapt_spec(spec, classes, input_size)[0])


def _arch_metrics(spec: dict[str, Any], dataset: str, origin: str) -> dict[str, Any]:
    """What `nasrepro metrics SPEC --dataset DATASET` reports (params, MACs, memory)."""
    from nas_impl.runs import architecture_metrics
    from nas_impl.tasks import task_for_dataset

    input_size = task_for_dataset(dataset).dataset_shape(dataset, spec)[1]
    return architecture_metrics(spec, input_size, origin, dataset)


def searched_target_spec(search_json: Path, target: str) -> dict[str, Any]:
    """The shape a multi-target search recorded for `target` (its search.json's `targets`)."""
    try:
        found = json.loads(search_json.read_text())["targets"]
    except (OSError, ValueError, KeyError) as err:
        raise NasReproError(f"{search_json}: cannot read the searched shapes ({err}); pass the search's search.json "
                            "as --searched, or rerun the search") from None
    if target not in found:
        raise NasReproError(f"{search_json} recorded no shape for target '{target}' (it has: {', '.join(found)})")
    return found[target]["arch"]


def _experiment(rep, name: str) -> str:
    if name not in rep.experiments:
        raise NasReproError(f"{rep.root / 'replication.yaml'} has no experiment '{name}'; known: {', '.join(rep.experiments)}")
    return name


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` options as {key: value}: values are YAML, except that a number in exponent
    notation is a number (YAML 1.1 reads `5e-4` as a string)."""
    import re

    exponent_number = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise NasReproError(f"--set '{pair}' must look like key=value, e.g. --set epochs=1")
        if exponent_number.fullmatch(value.strip()):
            overrides[key] = float(value)
            continue
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = " ".join(str(err).splitlines()[0].split())
            raise NasReproError(f"--set {pair}: the value is not valid YAML ({problem}); write e.g. "
                                "--set epochs=1, --set milestones=[30,60] or --set 'augment={crop_padding: 4}'") from None
    return overrides


def recipe(args: argparse.Namespace) -> dict:
    """The recipe of one scale, with overrides applied and validated, as a standalone YAML file."""
    from nas_impl.replication import load_replication

    rep = load_replication(args.replication)
    overrides = parse_overrides(args.set or [])
    if args.search is not None:
        if args.search not in rep.searches:
            raise NasReproError(f"{rep.root / 'replication.yaml'} has no search '{args.search}'; "
                                f"known: {', '.join(rep.searches) or 'none'}")
        resolved = rep.search_recipe(args.search, args.scale, overrides).to_dict()
        what = f"search recipe of '{args.search}'"
    else:
        if args.name not in rep.recipes:
            raise NasReproError(f"{rep.root / 'replication.yaml'} has no recipe '{args.name}'; known: {', '.join(rep.recipes)}")
        resolved = rep.recipe(args.name, args.scale, overrides).to_dict()
        what = f"recipe '{args.name}'"
    resolved = {k: v for k, v in resolved.items() if v is not None and k != "sources"} | {"sources": resolved["sources"]}
    header = f"# {rep.paper} {what} at {args.scale} scale (generated by nasrepro recipe)\n"
    write_text_atomic(args.out, header + yaml.safe_dump(resolved, sort_keys=False))
    return {"recipe": str(args.out), "overrides": overrides}


def train(args: argparse.Namespace) -> dict:
    from nas_impl.models import build_model, natural_input, normalize_spec
    from nas_impl.run_data import run_data
    from nas_impl.runs import architecture_metrics, resolve_device
    from nas_impl.tasks import task_for_dataset
    from nas_impl.training import Trainer, load_recipe
    from nas_impl.training.distributed import finish, start, world_from_env
    from nas_impl.training.run_dir import prepare_run_dir
    from nas_impl.training.seeding import seed_everything

    world = world_from_env()  # several processes under torchrun: data-parallel (training/distributed.py)
    device = start(world, resolve_device(args.device))
    recipe_ = with_teacher(load_recipe(args.recipe), args.teacher, args.recipe)
    task = task_for_dataset(args.dataset)
    spec = task.check_network(normalize_spec(args.arch), f"architecture {args.arch}", args.dataset)
    task.check_recipe(recipe_, f"recipe {args.recipe}")
    if world.is_main:  # rank 0 writes (and cleans): another rank's cleanup would race with its files
        prepare_run_dir(args.out)  # before the data is read: an unwritable --out fails at once
    data = run_data(args.dataset, recipe_, args.seed, device, args.data_root, evaluate=task.monitor_split,
                    window=task.window(natural_input(spec)))
    spec, changed = task.adapt_spec(spec, data.num_classes, data.input_size)
    architecture = architecture_metrics(spec, data.input_size, f"architecture {args.arch}", args.dataset)
    record = {**data.record, "arch_file": str(args.arch), "recipe_file": str(args.recipe)}
    if changed:
        record["spec_adapted_to_dataset"] = changed
    seed_everything(args.seed)  # model initialisation depends on the seed only
    trainer = Trainer(build_model(spec), recipe_, data.train_loader, data.eval_loader, out_dir=args.out,
                      seed=args.seed, device=device, record=record, extra_metrics={"architecture": architecture},
                      task=task, world=world, compile_step=args.compile)
    metrics = trainer.fit(resume=args.resume, stop_after=args.stop_after)
    finish(world)
    if task.headline not in metrics:
        return metrics  # stopped early on request
    keys = (task.headline, f"best_{task.headline}", "epochs", "wall_time_s")
    return {k: metrics[k] for k in keys} | {"out": str(args.out)}


def with_teacher(recipe_, teacher: str | None, origin: str):
    """The recipe with its distillation teacher set from --teacher (which needs a `distill` section)."""
    import dataclasses

    if teacher is None:
        return recipe_
    if recipe_.distill is None:
        raise NasReproError(f"--teacher given but recipe {origin} has no 'distill' section (temperature, alpha)")
    return dataclasses.replace(recipe_, distill=dataclasses.replace(recipe_.distill, teacher=str(teacher)))


def search(args: argparse.Namespace) -> dict:
    """Search a shape; writes OUT/{arch-<target>.yaml, arch.yaml, search.json} and the method's logs
    (see nas_impl.methods.interface)."""
    from nas_impl.methods import get_method
    from nas_impl.methods.interface import SearchJob
    from nas_impl.models import normalize_spec
    from nas_impl.runs import resolve_device
    from nas_impl.training.recipe import read_recipe_yaml
    from nas_impl.training.run_dir import prepare_run_dir

    method = get_method(args.method)
    if args.stage is not None:
        method.info.stage(args.stage)  # an unknown stage fails before any data is read
    recipe_ = method.info.recipe_from_dict(read_recipe_yaml(args.recipe, "search recipe"), str(args.recipe))
    prepare_run_dir(args.out)  # before the data is read: an unwritable --out fails at once
    job = SearchJob(normalize_spec(args.arch), recipe_, args.dataset, Path(args.out), args.seed,
                    resolve_device(args.device), args.data_root, args.resume, args.stop_after,
                    {"arch_file": str(args.arch), "recipe_file": str(args.recipe)})
    return method.run(job, args.stage).brief() | {"out": str(args.out)}


def evaluate(args: argparse.Namespace) -> dict:
    """A checkpoint's metrics on one split; only that split is read (the evaluation-only data path)."""
    from nas_impl.models import natural_input
    from nas_impl.run_data import EvaluationOnly, run_data
    from nas_impl.runs import check_fits, resolve_device
    from nas_impl.tasks import task_of
    from nas_impl.training import load_checkpoint, model_from_checkpoint, recipe_from_dict
    from nas_impl.training.checkpoint import require_keys

    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    require_keys(state, ("recipe", "seed", "record", "spec", "model"), args.checkpoint)
    recipe_ = recipe_from_dict({**state["recipe"], "distill": None}, origin=str(args.checkpoint))
    dataset = args.dataset or state["record"].get("dataset")
    model = model_from_checkpoint(args.checkpoint, device)
    task = task_of(model)
    if args.split not in task.splits:
        raise NasReproError(f"--split {args.split}: a {task.name} network is evaluated on {', '.join(task.splits)}")
    data = run_data(dataset, recipe_, state["seed"], device, args.data_root, EvaluationOnly(), evaluate=args.split,
                    window=task.window(natural_input(state["spec"])))
    check_fits(model, data.input_size, data.num_classes, f"checkpoint {args.checkpoint}", dataset)
    result = task.evaluate(model, data.eval_loader, device, bf16=device.type == "cuda")
    return {"checkpoint": str(args.checkpoint), "dataset": dataset, "split": args.split,
            **{k: v for k, v in result.items() if k != "n"}, task.unit: result["n"], "record": data.record}


def metrics(args: argparse.Namespace) -> dict:
    """At the spec's natural input (CIFAR families 32x32, ImageNet families 224x224, a language model's
    token window) unless --dataset or --input-size says otherwise."""
    from nas_impl.metrics import measure_latency
    from nas_impl.models import build_model, natural_input, normalize_spec
    from nas_impl.runs import architecture_metrics, parse_input_size, resolve_device
    from nas_impl.tasks import task_for_dataset

    if args.dataset:
        input_size = task_for_dataset(args.dataset).dataset_shape(args.dataset, normalize_spec(args.spec))[1]
    elif args.input_size:
        input_size = parse_input_size(args.input_size)
    else:
        input_size = natural_input(args.spec)
    out = architecture_metrics(args.spec, input_size, f"architecture {args.spec}", args.dataset)
    out |= {"spec": str(args.spec), "input_size": list(input_size)}
    if args.latency:
        device = resolve_device(args.device)
        batch_size = args.batch_size or (8 if device.type == "cuda" else 1)
        out["latency"] = measure_latency(build_model(args.spec), input_size, batch_size=batch_size, device=device)
    return out
