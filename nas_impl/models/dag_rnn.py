"""Family `dag-rnn-lm`: a language model whose recurrent cell is a DAG of nodes (DARTS-style),
as AutoShrink's ShrinkRNN (lordzth666/AutoShrink `evaluation/rnn/model.py`, `test_final.py`).

One time step, with x the (dropped) embedding and h the previous state:
- node 0 is a highway of x and h: [c, g] = [x * mx, h * mh] W0; s0 = h + sigmoid(c) (tanh(g) - h);
- an edge i -> j computes [c, g] = (s_i * mh) W_ij and s_i + sigmoid(c) (op_j(g) - s_i); node j
  is the mean of its incoming edges (op_j: the node's activation, `ops[j]`);
- the new state is the mean of the leaves (reachable nodes without an outgoing edge).
mx and mh are variational dropout masks drawn once per window and batch row (`dropout_x`,
`dropout_hidden`). Around the cell: embedding dropout that removes whole words (`dropout_embedding`),
locked dropout on the cell's input (`dropout_input`) and output (`dropout_output`), and a decoder
tied to the embedding (so the embedding size is `hidden_dim`). Weights start uniform in
±`init_range`, the decoder bias at 0. Only edges reachable from node 0 get weights (the official
model also allocates, and counts, weights for unreachable edges, but never uses them).

The spec's defaults are ShrinkRNN as released: 6 nodes, 12 edges, ops
[tanh, identity, sigmoid, sigmoid, tanh, identity] and the evaluation script's sizes and dropouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.models.dag import edge_problem, leaves, reachable_edges
from nas_impl.models.registry import SpecModel, register_family, register_model
from nas_impl.models.spec import require
from nas_impl.tasks.language import LMOutputs

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}
SHRINK_RNN_EDGES = [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [1, 3], [1, 4], [1, 5], [2, 4], [2, 5], [3, 4], [3, 5]]
SHRINK_RNN_OPS = ["tanh", "identity", "sigmoid", "sigmoid", "tanh", "identity"]


@dataclass
class DagRNNSpec:
    vocab_size: int = 10_000
    hidden_dim: int = 745  # also the embedding size: the decoder is tied to the embedding
    nodes: int = 6
    edges: list[list[int]] = field(default_factory=lambda: [list(e) for e in SHRINK_RNN_EDGES])
    ops: list[str] = field(default_factory=lambda: list(SHRINK_RNN_OPS))  # ops[0]: the highway's tanh
    dropout_output: float = 0.75
    dropout_hidden: float = 0.25
    dropout_x: float = 0.75
    dropout_input: float = 0.2
    dropout_embedding: float = 0.1
    init_range: float = 0.04
    seq_len: int = 35  # tokens per window (the BPTT length)

    @property
    def natural_input(self) -> tuple[int]:
        return (self.seq_len,)

    def check(self) -> None:
        for key in ("vocab_size", "hidden_dim", "nodes", "seq_len"):
            require(getattr(self, key) >= 1, f"key '{key}' = {getattr(self, key)}", "expected a positive integer")
        problem = edge_problem(self.edges, self.nodes)
        require(problem is None, f"key 'edges': {problem}", "write each edge as [from, to] with from < to")
        require(bool(reachable_edges(self.edges)), "key 'edges' has no edge from node 0",
                "add an edge [0, j]: node 0 is the cell's input")
        require(len(self.ops) == self.nodes, f"key 'ops' has {len(self.ops)} entries for {self.nodes} nodes",
                "give one activation per node")
        for i, op in enumerate(self.ops):
            require(op in ACTIVATIONS, f"key 'ops' entry {i} = {op!r}", f"expected one of {', '.join(ACTIVATIONS)}")
        require(self.ops[0] == "tanh", f"key 'ops' entry 0 = {self.ops[0]!r}",
                "node 0 is the highway of the input and the state, whose activation is tanh: write tanh")
        for key in ("dropout_output", "dropout_hidden", "dropout_x", "dropout_input", "dropout_embedding"):
            require(0 <= getattr(self, key) < 1, f"key '{key}' = {getattr(self, key)}", "expected a value in [0, 1)")
        require(self.init_range > 0, f"key 'init_range' = {self.init_range}", "expected a positive number")


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """One mask per batch row, shared by every time step of the (B, T, H) window."""
    if not training or p == 0:
        return x
    return x * x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p).div_(1 - p)


def embedding_dropout(embedding: nn.Embedding, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop whole words: a row mask on the embedding matrix (Gal & Ghahramani; AWD-LSTM)."""
    if not training or p == 0:
        return embedding(tokens)
    weight = embedding.weight
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p).div_(1 - p)
    return F.embedding(tokens, weight * mask)


@register_family("dag-rnn-lm")
class DagRNNLanguageModel(SpecModel):
    Spec = DagRNNSpec
    task = "language-modelling"

    def __init__(self, spec: DagRNNSpec) -> None:
        super().__init__(spec)
        h, r = spec.hidden_dim, spec.init_range
        self.edges = reachable_edges(spec.edges)
        self.leaves = leaves(self.edges)
        self.embedding = nn.Embedding(spec.vocab_size, h)
        self.decoder = nn.Linear(h, spec.vocab_size)
        self.decoder.weight = self.embedding.weight
        self.w0 = nn.Parameter(torch.empty(2 * h, 2 * h))  # rows: [x; h] -> columns: [c, g]
        self.w_edges = nn.ParameterDict({f"{i}_{j}": nn.Parameter(torch.empty(h, 2 * h)) for i, j in self.edges})
        for weight in (self.embedding.weight, self.w0, *self.w_edges.values()):
            nn.init.uniform_(weight, -r, r)
        nn.init.zeros_(self.decoder.bias)
        self.sources = sorted({i for i, _ in self.edges})
        self.targets = {i: [j for a, j in self.edges if a == i] for i in self.sources}

    def forward(self, tokens: torch.Tensor, state: Any = None, return_hidden: bool = False) -> tuple[Any, Any]:
        s = self.spec
        x = embedding_dropout(self.embedding, tokens, s.dropout_embedding, self.training)
        x = locked_dropout(x, s.dropout_input, self.training)
        hidden, state = self.cell(x, state)
        dropped = locked_dropout(hidden, s.dropout_output, self.training)
        logits = self.decoder(dropped)
        return (LMOutputs(logits, hidden, dropped) if return_hidden else logits), state

    def cell(self, x: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The (B, T, H) states of one window, and the last one (the state carried on)."""
        batch, steps, size = x.shape
        h = x.new_zeros(batch, size) if h is None else h
        mask_h = self._mask(batch, self.spec.dropout_hidden, x)
        if (mask_x := self._mask(batch, self.spec.dropout_x, x)) is not None:
            x = x * mask_x.unsqueeze(1)
        x_part = x @ self.w0[:size]  # the input's share of node 0, for every step at once
        w_h = self.w0[size:]
        # One matmul per source node: its outgoing edges' weights side by side.
        w_out = {i: torch.cat([self.w_edges[f"{i}_{j}"] for j in self.targets[i]], dim=1) for i in self.sources}
        outputs = []
        for t in range(steps):
            h = self._step(x_part[:, t], h, w_h, w_out, mask_h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h

    def _step(self, x_part: torch.Tensor, h: torch.Tensor, w_h: torch.Tensor, w_out: dict[int, torch.Tensor],
              mask_h: torch.Tensor | None) -> torch.Tensor:
        size = h.shape[1]
        c, g = (x_part + self._dropped(h, mask_h) @ w_h).split(size, dim=1)
        states: dict[int, list[torch.Tensor]] = {0: [h + torch.sigmoid(c) * (torch.tanh(g) - h)]}
        for i in range(self.spec.nodes):
            if i not in states:
                continue
            node = states[i][0] if len(states[i]) == 1 else torch.stack(states[i]).mean(0)
            states[i] = [node]
            if i not in w_out:
                continue
            gates = (self._dropped(node, mask_h) @ w_out[i]).split(size, dim=1)
            for k, j in enumerate(self.targets[i]):
                c, g = gates[2 * k], gates[2 * k + 1]
                states.setdefault(j, []).append(node + torch.sigmoid(c) * (ACTIVATIONS[self.spec.ops[j]](g) - node))
        out = [states[n][0] for n in self.leaves]
        return out[0] if len(out) == 1 else torch.stack(out).mean(0)

    @staticmethod
    def _dropped(v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return v if mask is None else v * mask

    def _mask(self, batch: int, p: float, like: torch.Tensor) -> torch.Tensor | None:
        if not self.training or p == 0:
            return None
        return like.new_empty(batch, like.shape[2]).bernoulli_(1 - p).div_(1 - p)


register_model("shrink-rnn", family="dag-rnn-lm")  # AutoShrink's released ShrinkRNN (PTB, 745 units)
