"""AutoShrink's CNN search behind the suite's search-method interface (`nas_impl.methods.interface`).

One stage, `search`: the proxy splits, then shrink steps until the keep fraction; after every
step the state (the steps so far, the graph, the draw's random state) is written atomically to
`shrink_state.json`, and a rerun with --resume continues from the last finished step, drawing
exactly what an uninterrupted run draws (each candidate's initialisation and batch stream are
functions of (seed, step, candidate)). The result: `arch.yaml`, the base `shrink-cnn` spec with
the chosen step's cell; `search.json` lists every step's candidates with their accuracy, MACs
and score (`details.steps`).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.io import write_json_atomic
from nas_impl.methods.autoshrink.proxy import ProxySettings, describe, proxy_indices, train_candidates
from nas_impl.methods.autoshrink.recipe import INFO, SearchRecipe, ShrinkSettings
from nas_impl.methods.autoshrink.shrink import Candidate, Shrinker, ShrinkStep, cnn_score, select_step
from nas_impl.methods.interface import SearchJob, SearchMethod, SearchedShape, SearchResult, Stage, StageResult
from nas_impl.models.dag import complete_dag

STATE = "shrink_state.json"


def node_ops(settings: ShrinkSettings) -> list[str]:
    """The recipe's ops, or the official protocol's balanced draw: node i's op is i mod 2 of
    (sep3x3, conv1x1), shuffled with `ops_seed`."""
    if settings.ops:
        return list(settings.ops)
    ops = [("sep3x3", "conv1x1")[i % 2] for i in range(settings.nodes - 1)]
    random.Random(settings.ops_seed).shuffle(ops)
    return ops


def proxy_settings(recipe: SearchRecipe) -> ProxySettings:
    w, s = recipe.weights, recipe.shrink
    return ProxySettings(per_class_train=s.per_class_train, per_class_valid=s.per_class_valid,
                         valid_from=s.valid_from, split_seed=s.split_seed, epochs=w.epochs, batch_size=w.batch_size,
                         valid_batch_size=s.valid_batch_size, lr=w.lr, betas=w.betas, weight_decay=w.weight_decay,
                         no_decay_bn_bias=w.no_decay_bn_bias)


def proxy_tensors(dataset: str, data_root: Any, settings: ProxySettings, device: torch.device):
    """((train images, labels), (validation images, labels), record): normalised float tensors."""
    from nas_impl import data

    ds = data.load_dataset(dataset, root=data_root)
    train_idx, split, valid_idx = proxy_indices(ds.train_y, ds.test_y, settings)
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)

    def normalised(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255.0 - mean) / std).to(device)

    valid_x, valid_y = (ds.train_x, ds.train_y) if split == "train" else (ds.test_x, ds.test_y)
    record = {"dataset": dataset, "proxy": data.SplitRecord.create(
        dataset, settings.split_seed, {"train": len(train_idx), f"valid_from_{split}": len(valid_idx)},
        train_idx, valid_idx).to_dict()}
    return ((normalised(ds.train_x[train_idx]), ds.train_y[train_idx].to(device)),
            (normalised(valid_x[valid_idx]), valid_y[valid_idx].to(device)), record, ds.num_classes, ds.input_size)


class AutoShrink(SearchMethod):
    info = INFO

    def run_stage(self, stage: Stage, job: SearchJob) -> SearchResult | StageResult:
        from nas_impl.metrics import count_macs
        from nas_impl.models import build_model
        from nas_impl.models.shrink_cnn import search_network_spec
        from nas_impl.runs import adapt_spec
        from nas_impl.training.provenance import run_provenance

        if job.base_spec.get("family") != "shrink-cnn":
            raise NasReproError(f"AutoShrink's CNN search puts its cell into a 'shrink-cnn' network; the base spec "
                                f"is of family '{job.base_spec.get('family')}'")
        recipe, device = job.recipe, torch.device(job.device)
        settings, proxy = recipe.shrink, proxy_settings(recipe)
        train, valid, record, classes, input_size = proxy_tensors(job.dataset, job.data_root, proxy, device)
        base, _ = adapt_spec(job.base_spec, classes, input_size[0])
        ops = node_ops(settings)
        shrinker = Shrinker(complete_dag(settings.nodes), k=settings.k, keep_fraction=settings.keep_fraction,
                            seed=job.seed)
        state_path = Path(job.out_dir) / STATE
        identity = {"recipe": recipe.to_dict(), "seed": job.seed, "dataset": job.dataset, "ops": ops}
        elapsed = _resume(shrinker, state_path, identity) if job.resume else 0.0
        job.out_dir.mkdir(parents=True, exist_ok=True)

        def search_spec(edges: list[list[int]]) -> dict[str, Any]:
            return search_network_spec(edges, ops, base.get("activation", "relu"), classes, input_size[0])

        while not shrinker.done:
            if job.stop_after is not None and len(shrinker.steps) >= job.stop_after:
                return StageResult("search", {"steps": len(shrinker.steps)}, stopped_after_epoch=len(shrinker.steps))
            start = time.perf_counter()
            step = len(shrinker.steps) + 1
            proposals = shrinker.propose()
            specs = [search_spec(shrinker.without(edge)) for edge in proposals]
            models = []
            for i, spec in enumerate(specs):
                torch.manual_seed(job.seed * 1_000_003 + step * 1_009 + i)  # each candidate's initialisation
                models.append(build_model(spec).to(device))
            runs = train_candidates(models, train, valid, proxy, seed=job.seed * 1_000_003 + step)
            candidates = []
            for edge, spec, run in zip(proposals, specs, runs):
                macs = count_macs(build_model(spec), input_size)
                candidates.append(Candidate(edge, cnn_score(run.best_valid_acc, macs), {"macs": macs, **describe(run)}))
            shrinker.apply(candidates)
            elapsed += time.perf_counter() - start
            _save(shrinker, state_path, identity, elapsed)

        chosen = select_step(shrinker.steps, settings.snapshot, settings.snapshot_ratio)
        arch = {**base, "nodes": settings.nodes, "edges": chosen.edges, "ops": ops}
        base_macs = count_macs(build_model(base), input_size)
        macs = count_macs(build_model(arch), input_size)
        shape = SearchedShape(arch, macs, macs / base_macs,
                              {"step": chosen.step, "edge_ratio": chosen.edge_ratio, "score": chosen.best.score,
                               "search_network": search_spec(chosen.edges)})
        details = {"steps": [s.to_dict() for s in shrinker.steps], "ops": ops, "max_edges": shrinker.max_edges,
                   "threshold": shrinker.threshold, "candidates_trained": sum(len(s.candidates) for s in shrinker.steps)}
        result = SearchResult("autoshrink", base_macs, {"cell": shape}, "cell", elapsed, details,
                              {"recipe": recipe.to_dict(), "record": {**record, **job.record},
                               "run": run_provenance(device, job.seed)})
        result.write(job.out_dir)
        return result


def _save(shrinker: Shrinker, path: Path, identity: dict[str, Any], elapsed: float) -> None:
    state = shrinker.rng.getstate()
    write_json_atomic(path, {**identity, "elapsed_s": elapsed, "rng": [state[0], list(state[1]), state[2]],
                             "steps": [s.to_dict() for s in shrinker.steps]})


def _resume(shrinker: Shrinker, path: Path, identity: dict[str, Any]) -> float:
    """Restore the finished steps of `path` (written by the same search); the time they took."""
    import json

    if not path.exists():
        return 0.0
    state = json.loads(path.read_text())
    if {k: state.get(k) for k in identity} != json.loads(json.dumps(identity)):
        raise NasReproError(f"{path} was written by another search (recipe, seed, dataset or ops differ): "
                            "delete it, or rerun without --resume")
    for raw in state["steps"]:
        candidates = [Candidate(c["removed"], c["score"], {k: v for k, v in c.items() if k not in ("removed", "score")})
                      for c in raw["candidates"]]
        shrinker.steps.append(ShrinkStep(raw["step"], tuple(candidates), raw["removed"], raw["edges"],
                                         raw["edge_ratio"]))
        shrinker.edges = raw["edges"]
    version, internal, gauss = state["rng"]
    shrinker.rng.setstate((version, tuple(internal), gauss))
    return float(state["elapsed_s"])


METHOD = AutoShrink()
