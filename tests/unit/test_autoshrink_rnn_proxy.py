"""The RNN search's proxy (nas_impl/methods/autoshrink/rnn_proxy.py) and its data (load_ptb_proxy).

The training tests compare against a slow, plain reimplementation of the official estimator
(lordzth666/AutoShrink searching/rnn/model.py Estimator.train_and_eval / train / evaluate) written
here, on tiny synthetic token streams.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nas_impl.data.ptb import FILES, load_ptb_proxy
from nas_impl.errors import DataError
from nas_impl.methods.autoshrink import rnn_proxy
from nas_impl.methods.autoshrink.rnn_proxy import (
    LMCandidateRun,
    LMProxySettings,
    _end_epoch,
    describe,
    initial_embedding,
    official_valid_loss,
    read_word_vectors,
    train_lm_candidates,
)
from nas_impl.models import build_model

VOCAB = 20
HIDDEN = 8


def make_model(edges, nodes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    ops = ["tanh", "sigmoid", "identity", "relu", "tanh"][:nodes]
    return build_model({"family": "dag-rnn-lm", "vocab_size": VOCAB, "hidden_dim": HIDDEN, "nodes": nodes,
                        "edges": edges, "ops": ops, "dropout_output": 0.0, "dropout_hidden": 0.0,
                        "dropout_x": 0.0, "dropout_input": 0.0, "dropout_embedding": 0.0, "seq_len": 35})


def token_stream(n: int, seed: int) -> torch.Tensor:
    """A learnable stream: mostly t -> t + 1 (mod VOCAB), with random tokens mixed in."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, VOCAB, (n,), generator=g)
    keep = torch.rand(n, generator=g) < 0.7
    stream = torch.empty(n, dtype=torch.int64)
    stream[0] = noise[0]
    for k in range(1, n):
        stream[k] = (stream[k - 1] + 1) % VOCAB if keep[k] else noise[k]
    return stream


TRAIN = token_stream(302, seed=1)  # 75 rows of 4 columns (2 tokens dropped)
VALID = token_stream(101, seed=2)  # 50 rows of 2 columns: the last eval window is cut to 4
TINY = dict(batch_size=4, eval_batch_size=2, bptt=5)


def columns(tokens: torch.Tensor, width: int) -> torch.Tensor:
    rows = len(tokens) // width
    return tokens[: rows * width].reshape(width, rows).t()


def reference_valid_loss(model: nn.Module, valid: torch.Tensor, bptt: int) -> float:
    model.eval()
    rows, total, state = len(valid), 0.0, None
    with torch.no_grad():
        for i in range(0, rows - 1, bptt):
            n = min(bptt, rows - 1 - i)
            x, y = valid[i : i + n], valid[i + 1 : i + 1 + n]
            logits, state = model(x.t().contiguous(), state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.t().reshape(-1)).item() * n
    return total / rows


def reference_train(model: nn.Module, s: LMProxySettings, seed: int) -> dict:
    """The official regime as a plain loop (one model, its own SGD written out)."""
    train, valid = columns(TRAIN, s.batch_size), columns(VALID, s.eval_batch_size)
    rows = len(train)
    params = list(model.parameters())
    g = torch.Generator().manual_seed(seed)
    lr, best, failures, history, stop_rule = s.lr, math.inf, 0, [], None
    drawn_lengths, clipped_steps, cut_windows = set(), 0, 0
    for epoch in range(s.epochs):
        model.train()
        state, moving, i = None, None, 0
        while i < rows - 2:
            drawn = s.bptt if torch.rand((), generator=g).item() < 1 - s.half_window_prob else int(s.bptt / 2)
            n = min(drawn, rows - 1 - i)
            drawn_lengths.add(drawn)
            cut_windows += n < drawn
            x, y = train[i : i + n], train[i + 1 : i + 1 + n]
            logits, state = model(x.t().contiguous(), state)
            state = state.detach()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.t().reshape(-1))
            for p in params:
                p.grad = None
            loss.backward()
            norm = nn.utils.clip_grad_norm_(params, s.grad_clip)
            clipped_steps += float(norm) > s.grad_clip
            step_lr = lr * drawn / s.bptt
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad.add(p, alpha=s.weight_decay), alpha=-step_lr)
            moving = loss.item() if moving is None else 0.1 * loss.item() + 0.9 * moving
            i += drawn
        valid_loss = reference_valid_loss(model, valid, s.bptt)
        history.append({"epoch": epoch + 1, "train_loss": moving, "valid_loss": valid_loss, "lr": lr})
        if epoch == s.epochs - 4 or epoch == s.epochs - 2:
            lr /= 10
        if valid_loss < best:
            best, failures = valid_loss, 0
        else:
            failures += 1
        if failures >= s.patience:
            stop_rule = "patience"
        elif valid_loss > 3 * moving:
            stop_rule = "3x"
        if stop_rule:
            break
    return {"history": history, "best": best, "epochs": len(history), "stop_rule": stop_rule,
            "drawn_lengths": drawn_lengths, "clipped_steps": clipped_steps, "cut_windows": cut_windows}


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name


def assert_same_history(history, expected) -> None:
    assert len(history) == len(expected)
    for got, want in zip(history, expected):
        assert set(got) == {"epoch", "train_loss", "valid_loss", "lr"}
        assert got["epoch"] == want["epoch"]
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-12)
        assert got["valid_loss"] == pytest.approx(want["valid_loss"], rel=1e-12)
        assert got["lr"] == pytest.approx(want["lr"], rel=1e-12)


# --- training: the official regime -------------------------------------------------------------

@pytest.mark.parametrize("settings, stop_rule", [
    (LMProxySettings(epochs=6, lr=2.0, grad_clip=0.05, weight_decay=1e-3, half_window_prob=0.5, patience=4,
                     **TINY), None),
    (LMProxySettings(epochs=6, lr=20.0, grad_clip=0.25, weight_decay=0.0, half_window_prob=0.3, patience=1,
                     batch_size=4, eval_batch_size=2, bptt=7), "patience"),
    (LMProxySettings(epochs=6, lr=30.0, grad_clip=0.5, weight_decay=0.0, half_window_prob=0.5, patience=4,
                     **TINY), "3x"),
], ids=["full-run-with-lr-drops", "patience-stop-odd-bptt", "diverging"])
def test_training_matches_a_plain_reimplementation_of_the_official_estimator(settings, stop_rule):
    model = make_model([[0, 1], [0, 2], [1, 2]], nodes=3, seed=3)
    reference_model = copy.deepcopy(model)

    run = train_lm_candidates([model], TRAIN, VALID, settings, seed=11)[0]
    expected = reference_train(reference_model, settings, seed=11)

    # The case exercises what it is meant to.
    assert expected["drawn_lengths"] == {settings.bptt, settings.bptt // 2}
    assert expected["clipped_steps"] > 0
    assert expected["stop_rule"] == stop_rule
    if stop_rule is None:
        assert expected["cut_windows"] > 0  # a last window cut at the end: lr still scaled by its drawn length

    assert_same_parameters(run.model, reference_model)
    assert_same_history(run.history, expected["history"])
    assert run.best_valid_loss == pytest.approx(expected["best"], rel=1e-12)
    assert run.epochs == expected["epochs"]
    assert run.active == (stop_rule is None)
    if stop_rule == "patience":
        assert f"{settings.patience} epochs without" in run.stopped
    if stop_rule == "3x":
        assert "3x" in run.stopped


def test_lockstep_candidates_equal_each_trained_alone():
    settings = LMProxySettings(epochs=4, lr=3.0, grad_clip=0.1, half_window_prob=0.5, patience=2, **TINY)
    models = [make_model([[0, 1], [1, 2], [2, 3]], 4, seed=1),
              make_model([[0, 1], [0, 2], [1, 3], [2, 3]], 4, seed=2),
              make_model([[0, 1], [0, 2], [0, 3]], 4, seed=3)]
    alone = [train_lm_candidates([copy.deepcopy(m)], TRAIN, VALID, settings, seed=7)[0] for m in models]
    together = train_lm_candidates(models, TRAIN, VALID, settings, seed=7)
    assert len(together) == 3
    for a, b in zip(alone, together):
        assert_same_parameters(a.model, b.model)
        assert a.history == b.history
        assert (a.best_valid_loss, a.epochs, a.stopped) == (b.best_valid_loss, b.epochs, b.stopped)
    assert not torch.equal(together[0].model.embedding.weight, together[1].model.embedding.weight)


def test_a_stopped_candidate_stops_training_while_the_others_go_on(monkeypatch):
    """One candidate's validation loss is forced above 3x its train loss: it keeps its first-epoch
    weights, and the other candidate trains on exactly as it would alone."""
    settings = LMProxySettings(epochs=3, lr=1.0, grad_clip=0.5, half_window_prob=0.5, patience=10, **TINY)
    doomed, survivor = make_model([[0, 1]], 2, seed=4), make_model([[0, 1], [0, 2]], 3, seed=5)
    real = rnn_proxy.official_valid_loss

    def forced(model, cols, bptt):
        loss = real(model, cols, bptt)
        return 1e3 if model.spec.nodes == 2 else loss

    monkeypatch.setattr(rnn_proxy, "official_valid_loss", forced)
    doomed_one_epoch = train_lm_candidates([copy.deepcopy(doomed)], TRAIN, VALID,
                                           dataclasses.replace(settings, epochs=1), seed=2)[0]
    survivor_alone = train_lm_candidates([copy.deepcopy(survivor)], TRAIN, VALID, settings, seed=2)[0]
    runs = train_lm_candidates([doomed, survivor], TRAIN, VALID, settings, seed=2)

    assert runs[0].epochs == 1 and runs[0].stopped is not None and "3x" in runs[0].stopped
    assert runs[0].best_valid_loss == 1e3
    assert_same_parameters(runs[0].model, doomed_one_epoch.model)
    assert runs[1].epochs == 3 and runs[1].active
    assert_same_parameters(runs[1].model, survivor_alone.model)
    assert runs[1].history == survivor_alone.history


class ModeRecorder(nn.Module):
    """A candidate that records, per forward, its mode and the window's shape."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[bool, tuple[int, int]]] = []

    def forward(self, tokens, state=None):
        self.calls.append((self.training, tuple(tokens.shape)))
        return self.inner(tokens, state)


def test_windows_train_in_train_mode_and_validation_runs_in_eval_mode():
    settings = LMProxySettings(epochs=1, lr=1.0, half_window_prob=0.5, **TINY)
    model = ModeRecorder(make_model([[0, 1]], 2, seed=8))
    train_lm_candidates([model], TRAIN, VALID, settings, seed=4)

    g, i, rows, train_shapes = torch.Generator().manual_seed(4), 0, len(TRAIN) // 4, []
    while i < rows - 2:
        drawn = 5 if torch.rand((), generator=g).item() < 0.5 else 2
        train_shapes.append((True, (4, min(drawn, rows - 1 - i))))
        i += drawn
    valid_rows = len(VALID) // 2
    eval_shapes = [(False, (2, min(5, valid_rows - 1 - i))) for i in range(0, valid_rows - 1, 5)]
    assert model.calls == train_shapes + eval_shapes


@pytest.mark.parametrize("epochs", [6, 3, 2])
def test_recorded_lr_is_the_lr_in_force_and_drops_after_epochs_minus_4_and_minus_2(epochs):
    settings = LMProxySettings(epochs=epochs, lr=0.5, grad_clip=1.0, patience=100, **TINY)
    run = train_lm_candidates([make_model([[0, 1], [1, 2]], 3, seed=6)], TRAIN, VALID, settings, seed=0)[0]
    expected, lr = [], 0.5
    for epoch in range(epochs):
        expected.append(lr)
        if epoch + 4 == epochs or epoch + 2 == epochs:
            lr = lr / 10
    assert run.stopped is None and run.epochs == epochs
    assert [h["lr"] for h in run.history] == pytest.approx(expected, rel=1e-12)
    assert [h["epoch"] for h in run.history] == list(range(1, epochs + 1))
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12)
    if epochs == 6:
        assert expected == pytest.approx([0.5, 0.5, 0.5, 0.05, 0.05, 0.005])


# --- the official evaluate -----------------------------------------------------------------------

class ConstantLogits(nn.Module):
    """Equal logits for every word: each token's loss is log(V)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, tokens, state=None):
        b, t = tokens.shape
        return torch.zeros(b, t, self.vocab) + self.bias, state


class StatefulTable(nn.Module):
    """Logits from a fixed table, scaled by the number of windows seen (carried in the state);
    records whether it ran in eval mode."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0)))
        self.modes: list[bool] = []

    def forward(self, tokens, state=None):
        calls = 1 if state is None else state + 1
        self.modes.append(self.training)
        return self.table[tokens] * (1 + 0.25 * calls), calls


def test_official_valid_loss_divides_by_the_row_count_not_the_window_total():
    vocab, rows, width = 7, 23, 3
    valid = torch.randint(0, vocab, (rows, width), generator=torch.Generator().manual_seed(1))
    got = official_valid_loss(ConstantLogits(vocab), valid, bptt=5)
    assert got == pytest.approx(math.log(vocab) * (rows - 1) / rows, rel=1e-6)


def test_official_valid_loss_sums_window_means_times_lengths_with_the_state_carried():
    vocab, rows, width, bptt = 6, 13, 2, 4  # windows of 4, 4, 4 rows of input
    valid = torch.randint(0, vocab, (rows, width), generator=torch.Generator().manual_seed(2))
    model = StatefulTable(vocab)
    model.train()
    got = official_valid_loss(model, valid, bptt)

    table = model.table.detach().double()
    total = 0.0
    for window, start in enumerate(range(0, rows - 1, bptt), start=1):
        n = min(bptt, rows - 1 - start)
        token_losses = []
        for t in range(start, start + n):
            for b in range(width):
                logits = table[valid[t, b]] * (1 + 0.25 * window)
                token_losses.append(float(torch.logsumexp(logits, 0) - logits[valid[t + 1, b]]))
        total += sum(token_losses) / len(token_losses) * n
    assert got == pytest.approx(total / rows, rel=1e-5)
    assert model.modes == [False] * 3


# --- the stop rules and the perplexity -----------------------------------------------------------

def fresh_run(lr: float = 20.0) -> LMCandidateRun:
    model = nn.Linear(1, 1)
    return LMCandidateRun(model, torch.optim.SGD(model.parameters(), lr=lr))


def feed(run: LMCandidateRun, settings: LMProxySettings, losses) -> None:
    for epoch, (train, valid) in enumerate(losses):
        if not run.active:
            break
        _end_epoch(run, epoch, train, valid, settings)


def test_validation_above_three_times_the_moving_train_loss_stops():
    settings = LMProxySettings(epochs=10, patience=4)
    at_limit = fresh_run()
    feed(at_limit, settings, [(3.0, 9.0), (3.0, 8.0)])
    assert at_limit.active and at_limit.epochs == 2  # 9 is not above 3 x 3

    above = fresh_run()
    feed(above, settings, [(3.0, 9.001), (3.0, 8.0)])
    assert not above.active and above.epochs == 1
    assert above.best_valid_loss == 9.001  # the stopping epoch's loss still counts as the best


def test_patience_counts_epochs_without_a_strictly_better_validation_loss():
    settings = LMProxySettings(epochs=100, patience=4)
    run = fresh_run()
    # best 5; fail; best 4; 4 again is no improvement: fail 1; 4.5 fail 2; 4.2 fail 3; 4.1 fail 4: stop.
    valid = [5.0, 5.5, 4.0, 4.0, 4.5, 4.2, 4.1, 1.0]
    feed(run, settings, [(4.0, v) for v in valid])
    assert run.epochs == 7 and not run.active
    assert "4 epochs" in run.stopped
    assert run.best_valid_loss == 4.0
    assert [h["valid_loss"] for h in run.history] == valid[:7]


def test_patience_one_stops_at_the_first_epoch_without_improvement():
    run = fresh_run()
    feed(run, LMProxySettings(epochs=100, patience=1), [(5.0, 4.0), (5.0, 3.0), (5.0, 3.5), (5.0, 1.0)])
    assert run.epochs == 3 and run.best_valid_loss == 3.0 and not run.active


def test_nan_validation_loss_stops():
    run = fresh_run()
    feed(run, LMProxySettings(epochs=10, patience=4), [(4.0, 5.0), (4.0, math.nan), (4.0, 1.0)])
    assert run.epochs == 2 and not run.active and run.best_valid_loss == 5.0


def test_end_epoch_drops_the_lr_after_epochs_minus_4_and_minus_2():
    run = fresh_run(lr=20.0)
    feed(run, LMProxySettings(epochs=10, patience=100), [(5.0, 5.0 - 0.1 * e) for e in range(10)])
    assert [h["lr"] for h in run.history] == pytest.approx([20.0] * 7 + [2.0] * 2 + [0.2], rel=1e-12)
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.2, rel=1e-12)  # no drop after the last


@pytest.mark.parametrize("best, expected", [
    (29.9, math.exp(29.9)), (4.6, math.exp(4.6)), (30.0, math.nan), (31.0, math.nan), (math.inf, math.nan),
])
def test_perplexity_is_nan_from_a_best_loss_of_30(best, expected):
    settings = LMProxySettings()
    run = fresh_run()
    run.best_valid_loss = best
    got = run.perplexity(settings.nan_loss)
    summary = describe(run, settings)
    if math.isnan(expected):
        assert math.isnan(got) and math.isnan(summary["valid_ppl"])
    else:
        assert got == expected and summary["valid_ppl"] == expected
    assert summary["valid_loss"] == (best if math.isfinite(best) else None)


def test_describe_reports_epochs_and_the_stop_reason():
    settings = LMProxySettings(epochs=10)
    run = fresh_run()
    feed(run, settings, [(1.0, 2.0), (1.0, 3.5)])
    summary = describe(run, settings)
    assert summary["epochs"] == 2 and summary["stopped"] == run.stopped and run.stopped is not None
    assert summary["valid_loss"] == 2.0 and summary["valid_ppl"] == math.exp(2.0)


def test_default_settings_are_the_official_search_arguments():
    s = LMProxySettings()
    assert (s.epochs, s.batch_size, s.eval_batch_size, s.bptt, s.half_window_prob, s.lr, s.grad_clip,
            s.weight_decay, s.patience, s.nan_loss) == (10, 128, 256, 35, 0.05, 20.0, 0.25, 0.0, 4, 30.0)


# --- the initial embedding and the word vectors ---------------------------------------------------

WORDS = ["the", "cat", "<eos>", "sat", "mat", "<unk>"]


def test_initial_embedding_is_uniform_with_pretrained_rows_overwritten():
    vectors = {"cat": torch.tensor([1.5, -2.0, 0.25, 3.0]), "mat": torch.tensor([0.0, 7.0, -7.0, 0.5]),
               "dog": torch.tensor([9.0, 9.0, 9.0, 9.0])}
    got = initial_embedding(WORDS, 4, torch.Generator().manual_seed(5), vectors)
    uniform = torch.empty(len(WORDS), 4).uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(5))
    assert got.shape == (len(WORDS), 4) and got.dtype == torch.float32
    assert torch.equal(got[1], vectors["cat"]) and torch.equal(got[4], vectors["mat"])
    for row in (0, 2, 3, 5):
        assert torch.equal(got[row], uniform[row])
        assert got[row].abs().max() <= 0.5
    assert not (got == 9.0).any()


def test_initial_embedding_without_vectors_depends_only_on_the_generator_seed():
    a = initial_embedding(WORDS, 3, torch.Generator().manual_seed(1))
    b = initial_embedding(WORDS, 3, torch.Generator().manual_seed(1))
    c = initial_embedding(WORDS, 3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (6, 3) and a.min() >= -0.5 and a.max() <= 0.5
    assert a.std() > 0.1  # spread over the range, not a constant


def test_read_word_vectors_reads_glove_text(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("the 0.25 -1.5 3\ncat 1e-2 0 -0.125\n", encoding="utf-8")
    vectors = read_word_vectors(path, 3)
    assert set(vectors) == {"the", "cat"}
    assert torch.equal(vectors["the"], torch.tensor([0.25, -1.5, 3.0]))
    assert torch.equal(vectors["cat"], torch.tensor([0.01, 0.0, -0.125]))


@pytest.mark.parametrize("bad_line", ["cat 1 2", "cat 1 2 3 4"])
def test_read_word_vectors_names_the_file_and_line_of_a_wrong_count(tmp_path, bad_line):
    path = tmp_path / "vectors.txt"
    path.write_text(f"the 0.25 -1.5 3\n{bad_line}\nsat 1 2 3\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_word_vectors(path, 3)
    assert str(path) in str(err.value) and "line 2" in str(err.value)


def test_read_word_vectors_rejects_a_non_number_and_a_missing_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("the 0.25 x 3\n", encoding="utf-8")
    with pytest.raises(DataError, match="vectors.txt"):
        read_word_vectors(path, 3)
    with pytest.raises(DataError, match="absent.txt"):
        read_word_vectors(tmp_path / "absent.txt", 3)


# --- the PTB proxy cut ----------------------------------------------------------------------------

OFFICIAL_CUT_MD5 = {"train": "cd399f2c44fc69a8f31ed728241e2e1b", "valid": "de27715837fa8dc1d12c83fa06c37e36",
                    "test": "0a64318a0b48d5cf682f1d7a2f1a6a76"}


def first_lines(path, n: int) -> list[bytes]:
    with open(path, "rb") as stream:
        return [stream.readline() for _ in range(n)]


def independent_cut(shared_data, counts):
    raw = {split: first_lines(shared_data / "ptb" / FILES[split], n) for split, n in counts.items()}
    words = {split: [w for line in lines for w in line.decode("utf-8").split() + ["<eos>"]]
             for split, lines in raw.items()}
    vocab = list(dict.fromkeys(words["train"] + words["valid"] + words["test"]))
    md5 = {split: hashlib.md5(b"".join(lines)).hexdigest() for split, lines in raw.items()}
    return words, vocab, md5


def assert_matches_cut(data, digests, words, vocab, md5) -> None:
    assert digests == md5
    assert data.vocab.id_to_word == vocab
    for split in ("train", "valid", "test"):
        assert data.vocab.decode(getattr(data, split)) == words[split]


def test_default_proxy_cut_is_the_official_penn_proxy(shared_data):
    data, digests = load_ptb_proxy(shared_data)
    words, vocab, md5 = independent_cut(shared_data, {"train": 4000, "valid": 300, "test": 300})
    assert md5 == OFFICIAL_CUT_MD5
    assert_matches_cut(data, digests, words, vocab, md5)
    assert len(words["train"]) == 88832 and len(data.train) == 88832


def test_custom_proxy_cut(shared_data):
    counts = {"train": 50, "valid": 5, "test": 5}
    data, digests = load_ptb_proxy(shared_data, lines=counts)
    words, vocab, md5 = independent_cut(shared_data, counts)
    assert_matches_cut(data, digests, words, vocab, md5)
    assert len(data.train) == len(words["train"]) < 2000


def test_proxy_cut_longer_than_a_file_is_a_data_error(shared_data):
    with pytest.raises(DataError, match="ptb.valid.txt"):
        load_ptb_proxy(shared_data, lines={"valid": 10**6})
