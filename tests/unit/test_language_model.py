"""ShrinkRNN (family `dag-rnn-lm`) and the AWD-LSTM training regime on the shared trainer.

The official code is lordzth666/AutoShrink `evaluation/rnn` (model.py: `RNN._compute_init_state`,
`node_op`, `cell`, `forward`; utils.py: `get_leaf`, `embedded_dropout`, `LockedDropout`, `mask2d`;
test_final.py: variable BPTT, TAR, clipping, the NT-ASGD switch). Every expected value below is
recomputed here, independently of the implementation. Pinned:
- the DAG cell (eval mode) equals a plain-loop rewrite of the official `node_op`, for ShrinkRNN's
  topology and other DAGs, and a one-edge cell equals its two formulas by hand;
- only edges reachable from node 0 get weights; the cell reads the mean of its leaves;
- ShrinkRNN's size as the official model builds it (23,000,700 parameters) and its MACs;
- the dropouts: locked (one mask per row for the whole window), embedding (whole words), and the
  variational masks on x and h;
- variable BPTT: window lengths, exact coverage of the stream, the step's lr scaled by length / bptt;
- AR/TAR; the NT-ASGD switch (its epoch, averaged-weight evaluation, the checkpoint's
  `eval_model`); `keep_best`; bit-exact resume; an image run refusing the language-model-only keys.
"""

from __future__ import annotations

import csv
import math
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

from nas_impl.data.ptb import batchify
from nas_impl.errors import NasReproError
from nas_impl.metrics import count_macs, count_params
from nas_impl.models import build_model, natural_input
from nas_impl.models.dag import complete_dag, edge_problem, leaves, reachable_edges
from nas_impl.models.dag_rnn import embedding_dropout, locked_dropout
from nas_impl.tasks import get_task
from nas_impl.tasks.language import LMOutputs, TokenWindows, window_length
from nas_impl.training import Trainer, load_checkpoint, model_from_checkpoint, recipe_from_dict

V, H, BPTT = 20, 8, 8  # a tiny vocabulary, hidden size and window
SHRINK_EDGES = [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [1, 3], [1, 4], [1, 5], [2, 4], [2, 5], [3, 4], [3, 5]]
SHRINK_OPS = ["tanh", "identity", "sigmoid", "sigmoid", "tanh", "identity"]
DROPOUTS = ("dropout_output", "dropout_hidden", "dropout_x", "dropout_input", "dropout_embedding")
NO_DROPOUT = dict.fromkeys(DROPOUTS, 0.0)
ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "identity": lambda v: v}


def dag_lm(**spec) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"family": "dag-rnn-lm", "vocab_size": V, "hidden_dim": H, "seq_len": BPTT, **spec})


def reference_lm(model: nn.Module, tokens: torch.Tensor, h: torch.Tensor, edges, ops, mx: torch.Tensor | float = 1.0,
                 mh: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The official forward, one step and one node at a time: (logits (B, T, V), last state); mx and
    mh are the variational masks on x and h (`mask2d`), 1 in eval mode."""
    emb, w0, bias = model.embedding.weight.detach(), model.w0.detach(), model.decoder.bias.detach()
    size, states = h.shape[1], []
    for t in range(tokens.shape[1]):
        c, g = (torch.cat([emb[tokens[:, t]] * mx, h * mh], dim=1) @ w0).split(size, dim=1)
        s = {0: h + torch.sigmoid(c) * (torch.tanh(g) - h)}
        for j in range(1, len(ops)):
            sources = [i for i, k in edges if k == j and i in s]  # edges out of reached nodes only
            if not sources:
                continue
            total = 0
            for i in sources:
                c, g = ((s[i] * mh) @ model.w_edges[f"{i}_{j}"].detach()).split(size, dim=1)
                total = total + s[i] + torch.sigmoid(c) * (ACT[ops[j]](g) - s[i])
            s[j] = total / len(sources)
        out = [s[n] for n in s if all(i != n for i, _ in edges)]  # reached nodes without an outgoing edge
        h = sum(out) / len(out)
        states.append(h)
    return torch.stack(states, dim=1) @ emb.t() + bias, h


def random_dag(seed: int, nodes: int = 5) -> tuple[list[list[int]], list[str]]:
    rng = random.Random(seed)
    edges = [[i, j] for i in range(nodes) for j in range(i + 1, nodes) if rng.random() < 0.5]
    if not any(i == 0 for i, _ in edges):
        edges.append([0, rng.randrange(1, nodes)])
    return edges, ["tanh"] + [rng.choice(sorted(ACT)) for _ in range(nodes - 1)]


# ---------------------------------------------------------------- the cell against the official formulation

OTHER_DAG = ([[0, 2], [0, 3], [2, 3], [1, 4], [2, 5], [3, 5], [1, 5], [0, 4]],  # node 1 unreachable; leaves 4, 5
             ["tanh", "sigmoid", "relu", "identity", "tanh", "relu"])


@pytest.mark.parametrize("edges, ops", [(SHRINK_EDGES, SHRINK_OPS), OTHER_DAG, random_dag(3), random_dag(7)],
                         ids=["shrink-rnn", "hand-dag", "random-dag-3", "random-dag-7"])
def test_the_cell_equals_the_official_node_op_over_windows_with_carried_state(edges, ops):
    model = dag_lm(nodes=len(ops), edges=edges, ops=ops, init_range=0.5).eval()  # large weights: non-linear regime
    nn.init.uniform_(model.decoder.bias, -1, 1)
    g = torch.Generator().manual_seed(1)
    tokens, h0 = torch.randint(0, V, (3, 10), generator=g), torch.randn(3, H, generator=g)
    with torch.no_grad():
        first, state = model(tokens[:, :6], h0)
        second, last = model(tokens[:, 6:], state)
    ref_first, ref_state = reference_lm(model, tokens[:, :6], h0, edges, ops)
    ref_second, ref_last = reference_lm(model, tokens[:, 6:], ref_state, edges, ops)
    torch.testing.assert_close(first, ref_first)
    torch.testing.assert_close(state, ref_state)
    torch.testing.assert_close(second, ref_second)
    torch.testing.assert_close(last, ref_last)
    with torch.no_grad():  # no state = a zero state (the official init_hidden)
        fresh, _ = model(tokens[:, :6])
    torch.testing.assert_close(fresh, reference_lm(model, tokens[:, :6], torch.zeros(3, H), edges, ops)[0])


def test_a_one_edge_cell_is_the_highway_then_one_identity_edge():
    model = dag_lm(hidden_dim=4, nodes=2, edges=[[0, 1]], ops=["tanh", "identity"], init_range=0.5).eval()
    nn.init.uniform_(model.decoder.bias, -1, 1)
    token, h = torch.tensor([[3]]), torch.tensor([[0.5, -1.0, 2.0, 0.25]])
    emb, w0, bias = model.embedding.weight.detach(), model.w0.detach(), model.decoder.bias.detach()
    w01 = model.w_edges["0_1"].detach()
    x = emb[3:4]
    c0, g0 = x @ w0[:4, :4] + h @ w0[4:, :4], x @ w0[:4, 4:] + h @ w0[4:, 4:]  # [x, h] W0 = [c, g]
    s0 = h + torch.sigmoid(c0) * (torch.tanh(g0) - h)  # node 0: the highway
    s1 = s0 + torch.sigmoid(s0 @ w01[:, :4]) * (s0 @ w01[:, 4:] - s0)  # edge 0 -> 1, identity
    with torch.no_grad():
        logits, state = model(token, h)
    torch.testing.assert_close(state, s1)
    torch.testing.assert_close(logits[0, 0], (s1 @ emb.t() + bias)[0])
    with torch.no_grad():  # all-zero cell weights: every gate is 1/2 and g = 0, so s0 = h/2 and s1 = h/4
        model.w0.zero_()
        model.w_edges["0_1"].zero_()
        torch.testing.assert_close(model(token, h)[1], h / 4)


# ---------------------------------------------------------------- the DAG helpers and the model's size

def test_reachable_edges_and_leaves_by_hand():
    assert complete_dag(4) == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    assert reachable_edges([[2, 3], [1, 3], [0, 2], [0, 2]]) == [[0, 2], [2, 3]]  # sorted, no repeats, 1 -> 3 dropped
    assert reachable_edges([[0, 1], [2, 3], [1, 3]]) == [[0, 1], [1, 3]]
    assert leaves(SHRINK_EDGES) == [4, 5]
    assert leaves([[0, 1], [0, 2], [1, 3]]) == [2, 3]
    assert leaves([[0, 1], [2, 3], [1, 3]]) == [3]
    assert leaves([[0, 1], [1, 2], [2, 3], [3, 4]]) == [4]
    assert leaves(OTHER_DAG[0]) == [4, 5]
    assert edge_problem([[0, 1], [0, 1]], 3) == "edge [0, 1] appears twice"
    assert "must go forward" in edge_problem([[2, 1]], 3) and "must go forward" in edge_problem([[0, 3]], 3)
    assert edge_problem(SHRINK_EDGES, 6) is None


def test_unreachable_edges_build_no_weights():
    model = dag_lm(nodes=5, edges=[[0, 2], [1, 3], [2, 4], [3, 4]], ops=["tanh"] * 5)  # 1 -> 3 -> 4 unreachable
    assert sorted(model.w_edges) == ["0_2", "2_4"]
    assert count_params(model) == V * H + V + (2 * H) * (2 * H) + 2 * H * (2 * H)


@pytest.mark.parametrize("spec, message", [
    ({"edges": [[1, 2]]}, "key 'edges' has no edge from node 0"),
    ({"edges": [[0, 6]]}, r"edge \[0, 6\] must go forward"),
    ({"ops": ["tanh"] * 5}, "key 'ops' has 5 entries for 6 nodes"),
    ({"ops": ["relu", *SHRINK_OPS[1:]]}, "key 'ops' entry 0 = 'relu'"),
    ({"ops": [*SHRINK_OPS[:5], "gelu"]}, "key 'ops' entry 5 = 'gelu'"),
    ({"dropout_x": 1.0}, "key 'dropout_x' = 1.0"),
])
def test_a_bad_spec_names_its_key(spec, message):
    with pytest.raises(NasReproError, match=message):
        dag_lm(**spec)


def test_shrink_rnn_has_the_official_parameter_count_and_macs():
    v, h, edges = 10_000, 745, 12
    model = build_model("shrink-rnn")
    assert (model.spec.vocab_size, model.spec.hidden_dim, model.leaves) == (v, h, [4, 5])
    assert model.decoder.weight is model.embedding.weight  # tied: counted once
    # embedding (= decoder weight) + decoder bias + W0 (2H x 2H) + 12 edges x (H x 2H)
    assert count_params(model) == v * h + v + (2 * h) * (2 * h) + edges * h * (2 * h) == 23_000_700
    assert natural_input(model.to_spec()) == (35,)
    per_token = (2 * h) * (2 * h) + edges * h * (2 * h) + h * v  # W0, every edge, the decoder
    assert count_macs(model, (35,)) == 35 * per_token


# ---------------------------------------------------------------- dropouts (training mode)

def test_locked_dropout_keeps_or_drops_a_row_feature_for_the_whole_window():
    torch.manual_seed(0)
    x = torch.rand(3, 7, 16) + 1.0
    ratio = locked_dropout(x, 0.5, training=True) / x
    assert set(ratio.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - p)
    assert torch.equal(ratio, ratio[:, :1].expand_as(ratio))  # the same for every time step
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)
    # The model's output dropout is that dropout: `dropped` is `hidden` times one mask per row.
    model = dag_lm(**{**NO_DROPOUT, "dropout_output": 0.5}).train()
    out, _ = model(torch.randint(0, V, (3, 6)), return_hidden=True)
    mask = out.dropped / out.hidden
    assert set(mask.unique().tolist()) <= {0.0, 2.0} and torch.equal(mask, mask[:, :1].expand_as(mask))
    torch.testing.assert_close(out.logits, model.decoder(out.dropped))


def test_embedding_dropout_removes_whole_words():
    torch.manual_seed(0)
    embedding = nn.Embedding(V, 6)
    tokens = torch.randint(0, V, (4, 50))
    p = 0.5
    out = embedding_dropout(embedding, tokens, p, training=True)
    kept, dropped = set(), set()
    for word in tokens.unique().tolist():
        rows = out[tokens == word]
        if torch.equal(rows, torch.zeros_like(rows)):
            dropped.add(word)
        else:  # every occurrence kept, scaled by 1 / (1 - p)
            torch.testing.assert_close(rows, (embedding.weight[word] / (1 - p)).expand_as(rows))
            kept.add(word)
    assert kept and dropped
    assert torch.equal(embedding_dropout(embedding, tokens, p, training=False), embedding(tokens))


def test_without_dropout_training_mode_computes_the_evaluation_output():
    model = dag_lm(**NO_DROPOUT)
    tokens, h = torch.randint(0, V, (3, 6)), torch.randn(3, H)
    with torch.no_grad():
        train_out = model.train()(tokens, h)
        eval_out = model.eval()(tokens, h)
    torch.testing.assert_close(train_out, eval_out, rtol=0, atol=0)


@pytest.mark.parametrize("key", DROPOUTS)
def test_each_dropout_changes_the_training_output(key):
    model = dag_lm(**{**NO_DROPOUT, key: 0.5}, init_range=0.5)
    tokens, h = torch.randint(0, V, (3, 6)), torch.randn(3, H)
    with torch.no_grad():
        eval_logits, eval_state = model.eval()(tokens, h)
        train_logits, train_state = model.train()(tokens, h)
    assert not torch.allclose(train_logits, eval_logits)
    if key in ("dropout_hidden", "dropout_x", "dropout_input", "dropout_embedding"):  # inside the recurrence
        assert not torch.allclose(train_state, eval_state)
    else:  # the output dropout leaves the carried state alone
        torch.testing.assert_close(train_state, eval_state)


def test_the_variational_masks_drop_x_and_h_as_the_official_cell_does(monkeypatch):
    """dropout_x masks the input of node 0, dropout_hidden the state entering node 0 and every edge's
    source (never the highway's or the edge's carried term): the official `_compute_init_state` /
    `node_op` with `mask2d` masks, one per window and batch row. The model's masks are replaced by
    known ones (drawn here) to compare with the reference."""
    model = dag_lm(**{**NO_DROPOUT, "dropout_x": 0.5, "dropout_hidden": 0.2}, init_range=0.5).train()
    g = torch.Generator().manual_seed(2)
    masks = {p: torch.bernoulli(torch.full((3, H), 1 - p), generator=g) / (1 - p) for p in (0.5, 0.2)}
    monkeypatch.setattr(model, "_mask", lambda batch, p, like: masks[p] if p else None)
    tokens, h = torch.randint(0, V, (3, 6), generator=g), torch.randn(3, H, generator=g)
    with torch.no_grad():
        logits, state = model(tokens, h)
    ref_logits, ref_state = reference_lm(model, tokens, h, SHRINK_EDGES, SHRINK_OPS, mx=masks[0.5], mh=masks[0.2])
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(state, ref_state)


# ---------------------------------------------------------------- variable BPTT

@pytest.mark.parametrize("uniform, normal, length", [
    (0.5, 1.3, 41), (0.5, -1.3, 28),  # base 35: int(35 + 5 z), truncated
    (0.97, 0.3, 19), (0.97, -0.5, 15),  # base 17.5 (probability 0.05)
    (0.5, -7.0, 5), (0.97, -3.6, 5),  # at least 5
    (0.5, 10.0, 55),  # at most bptt + 20 (test_final.py's max_seq_len_delta)
])
def test_window_length_is_the_official_formula(monkeypatch, uniform, normal, length):
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor(uniform))
    monkeypatch.setattr(torch, "randn", lambda *args, **kwargs: torch.tensor(normal))
    assert window_length(35) == length


def test_window_lengths_follow_awd_lstm():
    g = torch.Generator().manual_seed(0)
    for bptt in (35, 6):
        draws = [window_length(bptt, g) for _ in range(5_000)]
        assert 5 <= min(draws) and max(draws) <= bptt + 20
    assert min(window_length(6, g) for _ in range(200)) == 5  # N(6, 5) often falls below the floor
    # A long base (200) separates the two bases: 5% of windows around 100, 95% around 200.
    draws = np.array([window_length(200, g) for _ in range(20_000)])
    short = draws < 150
    assert abs(short.mean() - 0.05) < 0.01
    assert abs(draws[short].mean() - 99.5) < 1.0 and abs(draws[~short].mean() - 199.5) < 0.3  # int() truncates
    assert abs(draws.mean() - (0.95 * 200 + 0.05 * 100)) < 1.0
    assert draws.std() > 20  # the mixture, not N(200, 5) alone


def test_variable_windows_cover_the_stream_once_and_scale_the_lr_by_length():
    tokens = torch.arange(4 * 103)
    windows = TokenWindows(tokens, batch_size=4, bptt=BPTT, variable=True)
    torch.manual_seed(0)
    pairs = list(windows)
    columns = batchify(tokens, 4)
    assert torch.equal(torch.cat([x for x, _ in pairs], dim=1), columns[:-1].t())
    assert torch.equal(torch.cat([y for _, y in pairs], dim=1), columns[1:].t())
    lengths = [x.shape[1] for x, _ in pairs]
    assert len(set(lengths)) > 3 and all(5 <= n <= BPTT + 20 for n in lengths[:-1])
    assert [windows.lr_factor(x) for x, _ in pairs] == [n / BPTT for n in lengths]
    fixed = TokenWindows(tokens, batch_size=4, bptt=BPTT)
    assert {x.shape[1] for x, _ in list(fixed)[:-1]} == {BPTT} and fixed.lr_factor(pairs[0][0]) == 1.0


# ---------------------------------------------------------------- training through the trainer

LM_RECIPE = {"epochs": 1, "batch_size": 4, "eval_batch_size": 4, "optimizer": "sgd", "lr": 1.0, "momentum": 0.0,
             "weight_decay": 1e-5, "schedule": "constant", "grad_clip": 0.25}


def corpus(tokens: int) -> torch.Tensor:
    """A repeating pattern over 13 of the V words: learnable, and tiny."""
    return (torch.arange(tokens) * 5 + torch.arange(tokens) // 13) % 13


class RecordingWindows(TokenWindows):
    """Token windows that remember the window lengths of each pass (epoch)."""

    passes: list[list[int]]

    def __iter__(self):
        self.passes = [*getattr(self, "passes", []), []]
        for x, y in super().__iter__():
            self.passes[-1].append(x.shape[1])
            yield x, y


def lm_trainer(tmp_path, name: str = "run", windows=TokenWindows, **recipe) -> Trainer:
    recipe_ = recipe_from_dict({**LM_RECIPE, **recipe})
    train = windows(corpus(4 * 81), recipe_.batch_size, BPTT, variable=recipe_.variable_bptt)
    valid = TokenWindows(corpus(4 * 25 + 7)[7:], recipe_.eval_batch_size, BPTT)
    return Trainer(dag_lm(), recipe_, train, valid, out_dir=tmp_path / name, seed=0)


class ScriptedValidation:
    """Runs the real validation, but reports the given loss for each epoch (so the epoch of the
    NT-ASGD switch and the best epoch are known), and keeps the weights each evaluation saw."""

    def __init__(self, monkeypatch, losses: list[float]) -> None:
        self.losses, self.trainer, self.seen = losses, None, {}
        task = get_task("language-modelling")
        real = task.evaluate

        def evaluate(model, loader, device, bf16):
            result = real(model, loader, device, bf16)
            epoch = len(self.trainer.history) + 1
            self.seen[epoch] = {k: v.detach().clone() for k, v in model.named_parameters()}
            return {**result, "loss": self.losses[epoch - 1], "ppl": math.exp(self.losses[epoch - 1])}

        monkeypatch.setattr(task, "evaluate", evaluate)

    def attach(self, trainer: Trainer) -> Trainer:
        self.trainer = trainer
        return trainer


def nt_asgd_epoch(losses: list[float], nonmono: int) -> int | None:
    """The epoch (1-based) after which test_final.py switches to ASGD, or None."""
    seen = []
    for epoch, loss in enumerate(losses, 1):
        if len(seen) > nonmono and loss > min(seen[:-nonmono]):
            return epoch
        seen.append(loss)
    return None


def log_rows(tmp_path, name: str = "run") -> list[dict[str, str]]:
    return list(csv.DictReader((tmp_path / name / "train_log.csv").open()))


def record_lrs(trainer: Trainer) -> list[list[float]]:
    """The learning rate of every parameter group at each optimizer step (filled as the trainer runs)."""
    lrs, step = [], trainer.optimizer.step

    def recording_step(*args, **kwargs):
        lrs.append([group["lr"] for group in trainer.optimizer.param_groups])
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    return lrs


def test_the_trainer_scales_each_steps_lr_by_the_window_length(tmp_path):
    trainer = lm_trainer(tmp_path, windows=RecordingWindows, variable_bptt=True, lr=0.5)
    lrs = record_lrs(trainer)
    trainer.fit()
    (lengths,) = trainer.train_loader.passes
    assert len(set(lengths)) > 3 and len(lrs) == len(lengths)
    assert lrs == [[pytest.approx(0.5 * n / BPTT)] * len(trainer.optimizer.param_groups) for n in lengths]
    assert float(log_rows(tmp_path)[0]["lr"]) == 0.5  # the log keeps the recipe's (unscaled) rate


def test_a_decaying_schedule_decays_monotonically_within_its_range_with_variable_windows(tmp_path):
    bptt = 20
    recipe = recipe_from_dict({**LM_RECIPE, "epochs": 3, "schedule": "linear", "lr": 2.0, "grad_clip": 0.25,
                               "variable_bptt": True})
    train = RecordingWindows(corpus(4 * 1500), recipe.batch_size, bptt, variable=True)
    valid = TokenWindows(corpus(4 * 30), recipe.batch_size, bptt)
    model = dag_lm(hidden_dim=4, nodes=2, edges=[[0, 1]], ops=["tanh", "identity"], seq_len=bptt)  # cheap
    trainer = Trainer(model, recipe, train, valid, out_dir=tmp_path / "run", seed=0)
    lrs = record_lrs(trainer)
    trainer.fit()
    lengths = [n for epoch in train.passes for n in epoch]
    scheduled = [lr[0] * bptt / n for lr, n in zip(lrs, lengths, strict=True)]  # undo the length scaling
    assert all(0.0 <= lr <= 2.0 for lr in scheduled), [round(lr, 3) for lr in scheduled[-5:]]
    assert all(b <= a + 1e-9 for a, b in zip(scheduled, scheduled[1:]))


def test_ar_and_tar_are_the_awd_lstm_regularisers():
    g = torch.Generator().manual_seed(0)
    hidden, dropped = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    outputs = LMOutputs(torch.zeros(2, 5, V), hidden, dropped)
    ar_mean = sum(v * v for v in dropped.flatten().tolist()) / dropped.numel()
    tar_mean = sum((hidden[b, t + 1, k] - hidden[b, t, k]).item() ** 2
                   for b in range(2) for t in range(4) for k in range(3)) / (2 * 4 * 3)  # over time, batch first
    task = get_task("language-modelling")

    def reg(**keys):
        return float(task.regularisation(outputs, recipe_from_dict({"epochs": 1, **keys})))

    assert reg(ar=2.0, tar=0.5) == pytest.approx(2.0 * ar_mean + 0.5 * tar_mean, rel=1e-6)
    assert reg(ar=2.0) == pytest.approx(2.0 * ar_mean, rel=1e-6)
    assert reg(tar=0.5) == pytest.approx(0.5 * tar_mean, rel=1e-6)
    assert reg() == 0.0
    steady = LMOutputs(outputs.logits, torch.randn(2, 1, 3, generator=g).expand(2, 5, 3), dropped)
    assert float(task.regularisation(steady, recipe_from_dict({"epochs": 1, "tar": 1.0}))) == 0.0  # constant in time


@pytest.mark.parametrize("losses, nonmono, switch", [
    ([5.0, 4.0, 4.5, 4.8, 3.0, 3.5], 1, 4),  # "worse than the best of all earlier" would switch after epoch 3
    ([5.0, 4.0, 3.0, 3.5, 3.2, 4.1, 2.0, 2.5], 2, 6),  # ... after epoch 4
])
def test_nt_asgd_switches_when_validation_stalls_and_then_evaluates_the_average(tmp_path, monkeypatch, losses,
                                                                               nonmono, switch):
    assert nt_asgd_epoch(losses, nonmono) == switch
    scripted = ScriptedValidation(monkeypatch, losses)
    trainer = scripted.attach(lm_trainer(tmp_path, epochs=len(losses), asgd_nonmono=nonmono))
    metrics = trainer.fit()
    assert [int(r["averaging"]) for r in log_rows(tmp_path)] == [0] * switch + [1] * (len(losses) - switch)
    assert metrics["averaged_from_epoch"] == switch + 1
    assert isinstance(trainer.optimizer, torch.optim.ASGD)
    params = dict(trainer.model.named_parameters())
    average = {name: trainer.optimizer.state[p]["ax"] for name, p in params.items()}
    assert any(not torch.equal(average[n], params[n]) for n in params)  # the average is not the last iterate
    for name in params:  # the last evaluation saw the running average, and the model got its weights back
        assert torch.equal(scripted.seen[len(losses)][name], average[name]), name
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    for name, p in params.items():
        assert torch.equal(state["eval_model"][name], average[name]) and torch.equal(state["model"][name], p), name
    group = state["optimizer"]["param_groups"][0]  # test_final.py: ASGD(lr, t0=0, lambd=0., weight_decay)
    assert (group["t0"], group["lambd"], group["weight_decay"]) == (0, 0.0, LM_RECIPE["weight_decay"])
    loaded = dict(model_from_checkpoint(tmp_path / "run" / "checkpoint.pt").named_parameters())
    for name in params:  # what `nasrepro evaluate` loads
        assert torch.equal(loaded[name], average[name]), name


def test_keep_best_reports_and_keeps_the_best_validation_epoch(tmp_path, monkeypatch):
    losses = [3.0, 2.0, 2.5, 2.0, 2.7]  # the tie at epoch 4 keeps epoch 2 (test_final.py saves on a strict <)
    scripted = ScriptedValidation(monkeypatch, losses)
    trainer = scripted.attach(lm_trainer(tmp_path, epochs=len(losses), keep_best=True))
    metrics = trainer.fit()
    best = losses.index(min(losses)) + 1
    assert (metrics["selected_epoch"], metrics["epochs"]) == (best, len(losses))
    assert metrics["ppl"] == metrics["best_ppl"] == math.exp(2.0) and metrics["valid_loss"] == 2.0
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    loaded = dict(model_from_checkpoint(tmp_path / "run" / "checkpoint.pt").named_parameters())
    final = dict(trainer.model.named_parameters())
    assert state["best_epoch"] == best
    assert any(not torch.equal(scripted.seen[best][n], final[n]) for n in final)  # training moved on
    for name in final:
        assert torch.equal(state["eval_model"][name], scripted.seen[best][name]), name
        assert torch.equal(loaded[name], scripted.seen[best][name]) and torch.equal(state["model"][name], final[name])


@pytest.mark.parametrize("stop_after", [2, 5], ids=["switch-after-the-interruption", "switch-before-it"])
def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, monkeypatch, stop_after):
    losses = [5.0, 4.0, 4.5, 4.8, 3.0, 3.5]  # switch after epoch 4, best epoch 5
    recipe = {"epochs": 6, "variable_bptt": True, "tar": 0.5, "ar": 0.5, "asgd_nonmono": 1, "keep_best": True,
              "momentum": 0.9}
    scripted = ScriptedValidation(monkeypatch, losses)
    whole = scripted.attach(lm_trainer(tmp_path, "whole", **recipe))
    expected = whole.fit()
    assert scripted.attach(lm_trainer(tmp_path, "parts", **recipe)).fit(stop_after=stop_after) == {
        "stopped_after_epoch": stop_after}
    resumed = scripted.attach(lm_trainer(tmp_path, "parts", **recipe))
    got = resumed.fit(resume=True)
    assert (got["averaged_from_epoch"], got["selected_epoch"]) == (5, 5)

    def timeless(metrics):
        return {k: v for k, v in metrics.items() if k not in ("wall_time_s", "train_tokens_per_s", "run")}

    def rows(history):
        return [{k: v for k, v in r.items() if k not in ("epoch_s", "tokens_per_s")} for r in history]

    assert timeless(got) == timeless(expected)
    assert rows(resumed.history) == rows(whole.history)
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("whole", "parts"))
    for key in ("model", "eval_model"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["ax"], sb[i]["ax"]) for i in sa)


# ---------------------------------------------------------------- an image run refuses the language-model keys

@pytest.mark.parametrize("key, value", [("tar", 0.1), ("ar", 2.0), ("variable_bptt", True), ("asgd_nonmono", 5)])
def test_an_image_trainer_refuses_language_model_recipe_keys(tmp_path, key, value):
    recipe = recipe_from_dict({"epochs": 1, key: value})
    model = build_model({"family": "resnet-cifar", "depth": 8, "num_classes": 10})
    with pytest.raises(NasReproError, match=f"recipe key '{key}' applies to language-modelling only"):
        Trainer(model, recipe, [], [], out_dir=tmp_path / "run", seed=0)
    # keep_best is for any task
    Trainer(model, recipe_from_dict({"epochs": 1, "keep_best": True}), [], [], out_dir=tmp_path / "run", seed=0)


def test_nasrepro_train_refuses_variable_bptt_for_an_image_dataset(tmp_path, capsys):
    from nas_impl.cli import main

    data = tmp_path / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "train.npz", x_train=rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8),
             y_train=np.arange(16, dtype=np.int64) % 4)
    np.savez(data / "test.npz", x_test=rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8),
             y_test=np.arange(8, dtype=np.int64) % 4)
    arch, recipe = tmp_path / "arch.yaml", tmp_path / "recipe.yaml"
    arch.write_text(yaml.safe_dump({"family": "resnet-cifar", "depth": 8}))
    recipe.write_text(yaml.safe_dump({"epochs": 1, "batch_size": 8, "lr": 0.05, "variable_bptt": True}))
    code = main(["train", "--arch", str(arch), "--recipe", str(recipe), "--dataset", f"npz:{data}",
                 "--out", str(tmp_path / "run"), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "recipe key 'variable_bptt' applies to language-modelling only" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "metrics.json").exists()
