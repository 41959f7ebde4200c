"""AutoShrink's search work, torch-free (`SearchWork` of its MethodInfo; `nasrepro cost` prices it).

Stage `search`: a shrink from the complete DAG, one edge a step, each step training up to k
candidate cells on the proxy (CNN: a per-class subset of images; RNN: PTB lines, a small cell).
"""

from __future__ import annotations

import random
from typing import Any

from nas_impl.methods.work_units import (DATA_SIZES, EVAL_COST, PTB_TRAIN_LINES, Network, Part, SearchWork, StageWork,
                                         data_size, epochs_text, thousands)


def rnn_node_ops(settings: Any) -> list[str]:
    """AutoShrink's RNN ops draw (nas_impl.methods.autoshrink.method.node_ops, torch-free here)."""
    from nas_impl.methods.autoshrink.recipe import RNN_NODE_OPS  # not at the top: recipe.py imports this module

    if settings.ops:
        return list(settings.ops)
    rng = random.Random(settings.ops_seed)
    return [rng.choice(RNN_NODE_OPS) for _ in range(settings.nodes - 1)]


def shrink_candidates(nodes: int, k: int, keep_fraction: float) -> tuple[int, int]:
    """(steps, candidates trained) of a shrink from the complete DAG of `nodes` nodes, one edge a step."""
    edges = nodes * (nodes - 1) // 2
    threshold = round(edges * keep_fraction)
    counts = [min(k, left) for left in range(edges, threshold, -1)]
    return len(counts), sum(counts)


def stages(recipe: Any, base: Network) -> dict[str, StageWork]:
    w, s = recipe.weights, recipe.shrink
    steps, candidates = shrink_candidates(s.nodes, s.k, s.keep_fraction)
    bound = (f"{steps} steps x min({s.k}, edges left) = {candidates} candidates, an upper bound (one edge a step; "
             "edges made unreachable go too, and candidates stop early)")
    if base.spec.get("family") == "dag-rnn-lm":
        per_line = DATA_SIZES["ptb"].train / PTB_TRAIN_LINES
        train, valid = s.proxy_lines[0] * per_line, s.proxy_lines[1] * per_line
        edges = [[i, j] for j in range(s.nodes) for i in range(j)]
        spec = {**base.spec, "hidden_dim": s.hidden, "nodes": s.nodes, "edges": edges,
                "ops": ["tanh"] + rnn_node_ops(s), "seq_len": s.bptt,
                **{k: 0.0 for k in ("dropout_output", "dropout_hidden", "dropout_x", "dropout_input",
                                    "dropout_embedding")}}
        network = Network.of(f"{base.name}-proxy-h{s.hidden}", spec, base.dataset)
        basis = (f"{bound}; each {epochs_text(w.epochs)} x {thousands(train)} tokens ({s.proxy_lines[0]:,} PTB lines "
                 f"x {per_line:.1f} tokens a line, the training file's mean) + {thousands(valid)} valid tokens at "
                 f"1/3; network: the base's cell at hidden {s.hidden}, complete DAG, no dropout, the full vocabulary "
                 "(the proxy's is smaller: an upper bound)")
    else:
        classes = data_size(base.dataset).classes
        train, valid = s.per_class_train * classes, s.per_class_valid * classes
        network = base
        basis = (f"{bound}; each {epochs_text(w.epochs)} x {thousands(train)} proxy images + {thousands(valid)} "
                 "held-out at 1/3; network: the complete-DAG search network (later candidates have fewer edges: an "
                 "upper bound)")
    work = candidates * w.epochs * train
    parts = (Part(network, work), Part(network, candidates * w.epochs * valid, EVAL_COST))
    return {"search": StageWork("search", work + candidates * w.epochs * valid, parts, basis, network)}


SEARCH_WORK = SearchWork(
    stages,
    shape_bound="upper bound for the CNN cell (a subset of the complete DAG's edges); approximate for the RNN cell",
)
