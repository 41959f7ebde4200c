"""Family `lstm-lm`: a word-level LSTM language model (Zaremba et al., 2014), the task's baseline.

Embedding -> `layers` stacked LSTMs -> dropout -> a linear decoder over the vocabulary, with
optional weight tying (Press & Wolf, 2017: decoder weight = embedding, so `hidden_dim` must
equal `embedding_dim`). Dropout is applied to the embeddings and between and after the LSTM
layers. The model reads batch-first token windows (B, T) and returns logits (B, T, vocab) and
its LSTM state, which the language-modelling task carries from one window to the next
(truncated backpropagation through time).

Its natural input is one window of `seq_len` tokens: MACs and memory are counted on (1, seq_len),
and `seq_len` is also the BPTT length the task trains and evaluates with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from nas_impl.models.registry import SpecModel, register_family, register_model
from nas_impl.models.spec import require
from nas_impl.tasks.language import LMOutputs


@dataclass
class LSTMLMSpec:
    vocab_size: int = 10_000  # Penn Treebank (Mikolov's files)
    embedding_dim: int = 200
    hidden_dim: int = 200
    layers: int = 2
    dropout: float = 0.0
    tie_weights: bool = False
    seq_len: int = 35  # tokens per window (the BPTT length)

    @property
    def natural_input(self) -> tuple[int]:
        return (self.seq_len,)

    def __post_init__(self) -> None:
        for key in ("vocab_size", "embedding_dim", "hidden_dim", "layers", "seq_len"):
            require(getattr(self, key) >= 1, f"'{key}' = {getattr(self, key)} is not positive", f"set '{key}' to 1 or more")
        require(0 <= self.dropout < 1, f"'dropout' = {self.dropout} is outside [0, 1)", "set 'dropout' in [0, 1)")
        require(not self.tie_weights or self.hidden_dim == self.embedding_dim,
                f"'tie_weights' needs hidden_dim = embedding_dim (got {self.hidden_dim} and {self.embedding_dim})",
                "set them equal or set 'tie_weights: false'")


@register_family("lstm-lm")
class LSTMLanguageModel(SpecModel):
    Spec = LSTMLMSpec
    task = "language-modelling"

    def __init__(self, spec: LSTMLMSpec) -> None:
        super().__init__(spec)
        self.embedding = nn.Embedding(spec.vocab_size, spec.embedding_dim)
        self.dropout = nn.Dropout(spec.dropout)
        self.lstm = nn.LSTM(spec.embedding_dim, spec.hidden_dim, spec.layers, dropout=spec.dropout if spec.layers > 1 else 0.0,
                            batch_first=True)
        self.decoder = nn.Linear(spec.hidden_dim, spec.vocab_size)
        if spec.tie_weights:
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not spec.tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, state: Any = None, return_hidden: bool = False) -> tuple[Any, Any]:
        out, state = self.lstm(self.dropout(self.embedding(tokens)), state)
        dropped = self.dropout(out)
        logits = self.decoder(dropped)
        return (LMOutputs(logits, out, dropped) if return_hidden else logits), state


register_model("lstm-lm-small", family="lstm-lm")  # Zaremba et al.'s small configuration (2x200, no dropout)
register_model("lstm-lm-medium", family="lstm-lm", embedding_dim=650, hidden_dim=650, dropout=0.5)
