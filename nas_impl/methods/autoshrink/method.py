"""AutoShrink's searches behind the suite's search-method interface (`nas_impl.methods.interface`).

The base spec's family picks the search: `shrink-cnn` -> the CNN search on the CIFAR proxy
(`CNNProxy`), `dag-rnn-lm` -> the RNN search on the PTB proxy (`RNNProxy`). Both run one stage,
`search`: the proxy data, then shrink steps until the keep fraction, each step's candidates
trained together and scored by the proxy. After every step the state (the steps so far, the
graph, the draw's random state) is checkpointed by the shared epoch loop (one loop epoch is one
step: `search_checkpoint.pt`, `search_log.csv`), and a rerun with --resume continues from the last
finished step, drawing exactly what an uninterrupted run draws (each candidate's initialisation
and batch stream are functions of (seed, step, candidate)).
The result: `arch.yaml`, the base spec with the chosen step's cell; `search.json` lists every
step's candidates with their accuracy or perplexity, cost and score (`details.steps`).
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.methods.autoshrink import rnn_proxy
from nas_impl.methods.autoshrink.proxy import ProxySettings, describe, proxy_indices, train_candidates
from nas_impl.methods.autoshrink.recipe import INFO, RNN_NODE_OPS, SearchRecipe, ShrinkSettings, check_weights
from nas_impl.methods.autoshrink.shrink import (Candidate, Shrinker, ShrinkStep, cnn_score, rnn_flops, rnn_score,
                                                select_step)
from nas_impl.methods.interface import SearchJob, SearchMethod, SearchedShape, SearchResult, Stage, StageResult
from nas_impl.models.dag import Edge, complete_dag
from nas_impl.training.checkpoint import require_keys
from nas_impl.training.epoch_loop import EpochLoop, RunFiles

LOG_COLUMNS = ["step", "edges_left", "edge_ratio", "removed", "best_score", "mean_score", "best_valid_acc",
               "best_valid_ppl", "best_cost", "candidates", "stopped_early", "epoch_s"]
FILES = RunFiles(log="search_log.csv", log_columns=LOG_COLUMNS, checkpoint="search_checkpoint.pt",
                 checkpoint_format="nasrepro-autoshrink-search-v1", results=("search.json", "arch.yaml", "arch-*.yaml"))


def log_rows(steps: list[ShrinkStep]) -> list[dict[str, Any]]:
    """One row a step for `search_log.csv`: its removal, the best and mean score, the kept
    candidate's accuracy (CNN) or perplexity (RNN) and MACs (CNN) or FLOPs (RNN)."""
    rows = []
    for step in steps:
        best, scores = step.best, [c.score for c in step.candidates if not math.isnan(c.score)]
        rows.append({"step": step.step, "edges_left": len(step.edges), "edge_ratio": step.edge_ratio,
                     "removed": "-".join(map(str, step.removed)), "best_score": best.score,
                     "mean_score": sum(scores) / len(scores) if scores else math.nan,
                     "best_valid_acc": best.details.get("valid_acc", ""),
                     "best_valid_ppl": best.details.get("valid_ppl", ""),
                     "best_cost": best.details.get("macs", best.details.get("flops")),
                     "candidates": len(step.candidates),
                     "stopped_early": sum(c.details.get("stopped") is not None for c in step.candidates)})
    return rows


def node_ops(settings: ShrinkSettings, choices: tuple[str, ...] = ("sep3x3", "conv1x1")) -> list[str]:
    """The recipe's ops (one per node after node 0), or a seeded draw with `ops_seed`: for the CNN
    the official protocol's balanced one (node i's op is i mod 2 of (sep3x3, conv1x1), shuffled),
    for the RNN a uniform choice per node among `RNN_NODE_OPS` (official `random_choose_ops`)."""
    if settings.ops:
        return list(settings.ops)
    rng = random.Random(settings.ops_seed)
    if choices == RNN_NODE_OPS:
        return [rng.choice(choices) for _ in range(settings.nodes - 1)]
    ops = [choices[i % 2] for i in range(settings.nodes - 1)]
    rng.shuffle(ops)
    return ops


def proxy_settings(recipe: SearchRecipe) -> ProxySettings:
    w, s = recipe.weights, recipe.shrink
    return ProxySettings(per_class_train=s.per_class_train, per_class_valid=s.per_class_valid,
                         valid_from=s.valid_from, split_seed=s.split_seed, epochs=w.epochs, batch_size=w.batch_size,
                         valid_batch_size=s.valid_batch_size, lr=w.lr, betas=w.betas, weight_decay=w.weight_decay,
                         no_decay_bn_bias=w.no_decay_bn_bias)


def lm_proxy_settings(recipe: SearchRecipe) -> rnn_proxy.LMProxySettings:
    w, s = recipe.weights, recipe.shrink
    return rnn_proxy.LMProxySettings(epochs=w.epochs, batch_size=w.batch_size, eval_batch_size=w.eval_batch_size,
                                     bptt=s.bptt, half_window_prob=s.half_window_prob, lr=w.lr,
                                     grad_clip=w.grad_clip if w.grad_clip is not None else float("inf"),
                                     weight_decay=w.weight_decay, patience=s.patience)


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


def init_seed(job: SearchJob, step: int, candidate: int) -> int:
    """The seed of a candidate's initialisation."""
    return job.seed * 1_000_003 + step * 1_009 + candidate


def stream_seed(job: SearchJob, step: int) -> int:
    """The seed of a step's shared batch (or window-length) stream."""
    return job.seed * 1_000_003 + step


class CNNProxy:
    """The CNN search: candidates are the search network with the candidate cell, trained on the
    CIFAR proxy (`proxy.train_candidates`) and scored by accuracy and MACs."""

    def __init__(self, job: SearchJob) -> None:
        from nas_impl.runs import adapt_spec

        if job.dataset == "ptb":
            raise NasReproError("AutoShrink's CNN search (a 'shrink-cnn' base) needs an image dataset, not ptb")
        self.job, self.settings = job, proxy_settings(job.recipe)
        device = torch.device(job.device)
        self.train, self.valid, self.record, self.classes, self.input_size = proxy_tensors(
            job.dataset, job.data_root, self.settings, device)
        self.base, _ = adapt_spec(job.base_spec, self.classes, self.input_size[0])
        self.ops = node_ops(job.recipe.shrink)
        self.device = device

    def search_spec(self, edges: list[Edge]) -> dict[str, Any]:
        from nas_impl.models.shrink_cnn import search_network_spec

        return search_network_spec(edges, self.ops, self.base.get("activation", "relu"), self.classes,
                                   self.input_size[0])

    def arch(self, edges: list[Edge]) -> dict[str, Any]:
        return {**self.base, "nodes": self.job.recipe.shrink.nodes, "edges": edges, "ops": self.ops}

    def macs(self, spec: dict[str, Any]) -> int:
        from nas_impl.metrics import spec_macs

        return spec_macs(spec, self.input_size)

    def score(self, step: int, proposals: list[Edge], shrinker: Shrinker) -> list[Candidate]:
        from nas_impl.models import build_model

        specs = [self.search_spec(shrinker.without(edge)) for edge in proposals]
        models = []
        for i, spec in enumerate(specs):
            torch.manual_seed(init_seed(self.job, step, i))
            models.append(build_model(spec).to(self.device))
        runs = train_candidates(models, self.train, self.valid, self.settings, seed=stream_seed(self.job, step))
        candidates = []
        for edge, spec, run in zip(proposals, specs, runs):
            macs = self.macs(spec)
            candidates.append(Candidate(edge, cnn_score(run.best_valid_acc, macs), {"macs": macs, **describe(run)}))
        return candidates


class RNNProxy:
    """The RNN search: candidates are the base's DAG cell at `hidden` units without dropout, trained
    on the PTB proxy (`rnn_proxy.train_lm_candidates`) and scored by perplexity and the official
    FLOPs (reachable edges x hidden^2)."""

    def __init__(self, job: SearchJob) -> None:
        from nas_impl.data import load_ptb_proxy

        if job.dataset != "ptb":
            raise NasReproError(f"AutoShrink's RNN search (a 'dag-rnn-lm' base) runs on ptb, not {job.dataset}")
        s = job.recipe.shrink
        self.job, self.settings, self.device = job, lm_proxy_settings(job.recipe), torch.device(job.device)
        corpus, digests = load_ptb_proxy(job.data_root, dict(zip(("train", "valid", "test"), s.proxy_lines)))
        self.train, self.valid = corpus.train.to(self.device), corpus.valid.to(self.device)
        self.base = job.base_spec
        self.ops = ["tanh"] + node_ops(s, RNN_NODE_OPS)  # node 0: the highway's fixed tanh
        vectors = rnn_proxy.read_word_vectors(s.embedding_vectors, s.hidden) if s.embedding_vectors else None
        self.embedding = rnn_proxy.initial_embedding(corpus.vocab.id_to_word, s.hidden,
                                                     torch.Generator().manual_seed(job.seed), vectors)
        self.input_size = (self.base.get("seq_len", 35),)
        self.record = {"dataset": "ptb", "proxy": {"lines": list(s.proxy_lines), "md5": digests,
                                                   "vocab_size": len(corpus.vocab), "train_tokens": len(corpus.train),
                                                   "valid_tokens": len(corpus.valid),
                                                   "pretrained_vectors": sum(w in (vectors or {}) for w in
                                                                             corpus.vocab.id_to_word)}}

    def search_spec(self, edges: list[Edge]) -> dict[str, Any]:
        s = self.job.recipe.shrink
        return {"family": "dag-rnn-lm", "vocab_size": len(self.embedding), "hidden_dim": s.hidden,
                "nodes": s.nodes, "edges": edges, "ops": self.ops, "dropout_output": 0.0, "dropout_hidden": 0.0,
                "dropout_x": 0.0, "dropout_input": 0.0, "dropout_embedding": 0.0, "init_range": 0.04,
                "seq_len": s.bptt}

    def arch(self, edges: list[Edge]) -> dict[str, Any]:
        return {**self.base, "nodes": self.job.recipe.shrink.nodes, "edges": edges, "ops": self.ops}

    def macs(self, spec: dict[str, Any]) -> int:
        from nas_impl.metrics import spec_macs

        return spec_macs(spec, self.input_size)

    def score(self, step: int, proposals: list[Edge], shrinker: Shrinker) -> list[Candidate]:
        from nas_impl.models import build_model

        models = []
        for i, edge in enumerate(proposals):
            torch.manual_seed(init_seed(self.job, step, i))  # the recurrent weights; the embedding is copied
            model = build_model(self.search_spec(shrinker.without(edge))).to(self.device)
            with torch.no_grad():
                model.embedding.weight.copy_(self.embedding)
            models.append(model)
        runs = rnn_proxy.train_lm_candidates(models, self.train, self.valid, self.settings,
                                             stream_seed(self.job, step))
        candidates = []
        for edge, run in zip(proposals, runs):
            flops = rnn_flops(shrinker.without(edge), self.job.recipe.shrink.hidden)
            ppl = run.perplexity(self.settings.nan_loss)
            candidates.append(Candidate(edge, rnn_score(ppl, flops), {"flops": flops,
                                                                      **rnn_proxy.describe(run, self.settings)}))
        return candidates


PROXIES = {"shrink-cnn": ("cnn", CNNProxy), "dag-rnn-lm": ("rnn", RNNProxy)}


class ShrinkJob:
    """The shrink steps as the shared epoch loop's job: one loop epoch is one shrink step. The loop
    owns the checkpoint (the steps so far and the draw's random state), resume, `stop_after` and
    search_log.csv; the job ends, finished, when the graph reaches the keep fraction."""

    def __init__(self, job: SearchJob, proxy: Any, shrinker: Shrinker) -> None:
        self.proxy, self.shrinker = proxy, shrinker
        self._identity = {"recipe": job.recipe.to_dict(), "seed": job.seed, "dataset": job.dataset,
                          "ops": proxy.ops}

    def identity(self) -> dict[str, Any]:
        return self._identity

    def state(self) -> dict[str, Any]:
        version, internal, gauss = self.shrinker.rng.getstate()
        return {"rng": [version, list(internal), gauss], "steps": [s.to_dict() for s in self.shrinker.steps]}

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        require_keys(state, ("rng", "steps"), path)
        for raw in state["steps"]:
            candidates = [Candidate(c["removed"], c["score"],
                                    {k: v for k, v in c.items() if k not in ("removed", "score")})
                          for c in raw["candidates"]]
            self.shrinker.steps.append(ShrinkStep(raw["step"], tuple(candidates), raw["removed"], raw["edges"],
                                                  raw["edge_ratio"]))
            self.shrinker.edges = raw["edges"]
        version, internal, gauss = state["rng"]
        self.shrinker.rng.setstate((version, tuple(internal), gauss))

    def finished(self) -> bool:
        return self.shrinker.done

    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        start = time.perf_counter()
        shrinker = self.shrinker
        step = shrinker.apply(self.proxy.score(epoch + 1, shrinker.propose(), shrinker))
        seconds = time.perf_counter() - start
        print(f"step {step.step}: removed {step.removed}, {len(step.edges)} edges left "
              f"(stop at {shrinker.threshold}), best score {step.best.score:.4f}, {seconds:.0f} s",
              file=sys.stderr, flush=True)
        return {**log_rows([step])[0], "epoch": step.step, "epoch_s": seconds}


class AutoShrink(SearchMethod):
    info = INFO

    def run_stage(self, stage: Stage, job: SearchJob) -> SearchResult | StageResult:
        from nas_impl.training.provenance import run_provenance

        family = job.base_spec.get("family")
        if family not in PROXIES:
            raise NasReproError(f"AutoShrink searches a cell of a 'shrink-cnn' network (the CNN search) or a "
                                f"'dag-rnn-lm' language model (the RNN search); the base spec is of family '{family}'")
        kind, proxy_class = PROXIES[family]
        check_weights(job.recipe, kind)
        recipe, settings = job.recipe, job.recipe.shrink
        proxy = proxy_class(job)
        shrinker = Shrinker(complete_dag(settings.nodes), k=settings.k, keep_fraction=settings.keep_fraction,
                            seed=job.seed)
        # Every step removes an edge at least, so there are at most this many.
        loop = EpochLoop(job.out_dir, FILES, seed=job.seed, epochs=shrinker.max_edges - shrinker.threshold,
                         device=job.device)
        if not loop.run(ShrinkJob(job, proxy, shrinker), job.resume, job.stop_after):
            return StageResult("search", loop.stopped(), loop.stopped_after)

        chosen = select_step(shrinker.steps, settings.snapshot, settings.snapshot_ratio)
        arch = proxy.arch(chosen.edges)
        base_macs, macs = proxy.macs(proxy.base), proxy.macs(arch)
        shape = SearchedShape(arch, macs, macs / base_macs,
                              {"step": chosen.step, "edge_ratio": chosen.edge_ratio, "score": chosen.best.score,
                               "search_network": proxy.search_spec(chosen.edges)})
        details = {"search": kind, "steps": [s.to_dict() for s in shrinker.steps], "ops": proxy.ops,
                   "max_edges": shrinker.max_edges, "threshold": shrinker.threshold,
                   "candidates_trained": sum(len(s.candidates) for s in shrinker.steps)}
        result = SearchResult("autoshrink", base_macs, {"cell": shape}, "cell", loop.elapsed_s, details,
                              {"recipe": recipe.to_dict(), "record": {**proxy.record, **job.record},
                               "run": run_provenance(torch.device(job.device), job.seed)})
        result.write(job.out_dir)
        return result


METHOD = AutoShrink()
