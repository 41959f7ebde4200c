"""`nasrepro <verb>`: the command line every workflow rule calls."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nas_impl.errors import NasReproError


def _prepare_data(args: argparse.Namespace) -> dict:
    from nas_impl import data

    start = time.perf_counter()
    ds = data.load_dataset(args.dataset, root=args.data_root)  # verifies every checksum
    summary = {
        "dataset": args.dataset,
        "train_images": len(ds.train_y),
        "test_images": len(ds.test_y),
        "num_classes": ds.num_classes,
        "input_size": list(ds.input_size),
        "mean": list(ds.mean),
        "std": list(ds.std),
        "verify_s": round(time.perf_counter() - start, 3),
    }
    if args.out:
        from nas_impl.io import write_json_atomic

        write_json_atomic(args.out, summary)
    return summary


def _train(args: argparse.Namespace) -> dict:
    from nas_impl.models import build_model, normalize_spec
    from nas_impl.runs import adapt_spec, image_data, resolve_device
    from nas_impl.training import Trainer, load_recipe

    device = resolve_device(args.device)
    recipe = load_recipe(args.recipe)
    data = image_data(args.dataset, recipe, args.seed, device, args.data_root)
    spec, changed = adapt_spec(normalize_spec(args.arch), data.num_classes, data.input_size[0])
    record = {**data.record, "arch_file": str(args.arch), "recipe_file": str(args.recipe)}
    if changed:
        record["spec_adapted_to_dataset"] = changed
    from nas_impl.training.seeding import seed_everything

    seed_everything(args.seed)  # model initialisation depends on the seed only
    model = build_model(spec)
    trainer = Trainer(model, recipe, data.train_loader, data.eval_loader, out_dir=args.out, seed=args.seed,
                      device=device, record=record)
    metrics = trainer.fit(resume=args.resume, stop_after=args.stop_after)
    if "top1" in metrics:
        from nas_impl.metrics import model_metrics
        from nas_impl.io import write_json_atomic

        metrics["architecture"] = model_metrics(build_model(spec), data.input_size)
        write_json_atomic(Path(args.out) / "metrics.json", metrics)
        return {k: metrics[k] for k in ("top1", "best_top1", "epochs", "wall_time_s")} | {"out": str(args.out)}
    return metrics


def _evaluate(args: argparse.Namespace) -> dict:
    from nas_impl.runs import image_data, resolve_device
    from nas_impl.training import evaluate, load_checkpoint, model_from_checkpoint, recipe_from_dict

    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    recipe = recipe_from_dict({**state["recipe"], "distill": None}, origin=str(args.checkpoint))
    dataset = args.dataset or state["record"].get("dataset")
    data = image_data(dataset, recipe, state["seed"], device, args.data_root, split=args.split)
    model = model_from_checkpoint(args.checkpoint, device)
    result = evaluate(model, data.eval_loader, device)
    out = {"checkpoint": str(args.checkpoint), "dataset": dataset, "split": args.split,
           "top1": result.top1, "loss": result.loss, "images": result.n, "record": data.record}
    if args.out:
        from nas_impl.io import write_json_atomic

        write_json_atomic(args.out, out)
    return out


def _metrics(args: argparse.Namespace) -> dict:
    from nas_impl.metrics import measure_latency, model_metrics
    from nas_impl.models import build_model
    from nas_impl.runs import parse_input_size, resolve_device

    input_size = parse_input_size(args.input_size)
    model = build_model(args.spec)
    out = model_metrics(model, input_size)
    out["spec"] = str(args.spec)
    if args.latency:
        out["latency"] = measure_latency(model, input_size, batch_size=args.batch_size, device=resolve_device(args.device))
    if args.out:
        from nas_impl.io import write_json_atomic

        write_json_atomic(args.out, out)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasrepro", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", default=None, help="dataset root (default: $NASREPRO_DATA or ./data)")

    p = verbs.add_parser("prepare-data", help="find a dataset, verify its checksums, print a summary")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", help="write the summary JSON here")
    data_args(p)
    p.set_defaults(func=_prepare_data)

    p = verbs.add_parser("train", help="train an architecture spec with a recipe")
    p.add_argument("--arch", required=True, help="architecture spec YAML or registered model name")
    p.add_argument("--recipe", required=True, help="recipe YAML")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="run directory (checkpoint.pt, train_log.csv, metrics.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch (resume later)")
    data_args(p)
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="evaluate a checkpoint on a split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", default=None, help="default: the dataset it was trained on")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="write the result JSON here")
    data_args(p)
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("metrics", help="params, MACs, memory (and latency) of an architecture spec")
    p.add_argument("spec", help="architecture spec YAML or registered model name")
    p.add_argument("--input-size", default="3x32x32", help="CxHxW (default 3x32x32)")
    p.add_argument("--json", action="store_true", help="print JSON (the default output format)")
    p.add_argument("--latency", action="store_true", help="also time inference")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="write the JSON here")
    p.set_defaults(func=_metrics)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except NasReproError as err:
        print(f"nasrepro {args.verb}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
