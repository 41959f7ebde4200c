"""Latency lookup tables (ProxylessNAS, issue 14): official key strings, the official and the
suite's file layouts, clear errors, measuring on CPU, expected latency and the loss forms.
Expected values are written out by hand here, not taken from the implementation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.metrics.latency import device_name
from nas_impl.metrics.latency_lut import (
    LatencyEntry,
    LatencyTable,
    expected_latency,
    feature_mix_key,
    first_conv_key,
    latency_loss,
    logits_key,
    mbconv_key,
    measure_latency_table,
    network_latency,
)

# Keys as the official LatencyEstimator.predict builds them (search/utils/latency_estimator.py)
K_MB = "expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0"
K_MB_RES = "expanded_conv-input:56x56x24-output:56x56x24-expand:6-kernel:3-stride:1-idskip:1"
K_FIRST = "Conv-input:224x224x3-output:112x112x32"
K_MIX = "Conv_1-input:7x7x320-output:7x7x1280"
K_LOGITS = "Logits-input:7x7x1280-output:1000"

# The official layout, as mobile_trim.yaml writes it: unquoted keys, count/mean/var per key.
OFFICIAL_TEXT = f"""\
{K_FIRST}:
  count: 982
  mean: 6.123
  var: 0.05
{K_MB}:
  count: 154
  mean: 5.264772727272727
  var: 0.19495998666150827
{K_MIX}:
  count: 200
  mean: 2.5
  var: 0.01
{K_LOGITS}:
  count: 300
  mean: 1.25
  var: 0.002
"""


def small_table() -> LatencyTable:
    return LatencyTable({K_FIRST: LatencyEntry(6.0, 0.1, 10), K_MIX: LatencyEntry(2.5, 0.0, 10),
                         K_LOGITS: LatencyEntry(1.25, 0.0, 10), K_MB: LatencyEntry(3.0, 0.2, 10),
                         K_MB_RES: LatencyEntry(4.5, 0.3, 10)},
                        device="Test CPU", source="hand-written", threads=2, statistic="median")


# Keys -------------------------------------------------------------------------------------------


def test_keys_match_official_strings():
    assert mbconv_key(112, 16, 56, 24, 3, 5, 2, 0) == K_MB
    assert mbconv_key(56, 24, 56, 24, 6, 3, 1, True) == K_MB_RES
    assert mbconv_key((112, 112), 32, (112, 112), 16, 1, 3, 1, False) == \
        "expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0"
    assert first_conv_key(224, 3, 112, 32) == K_FIRST
    assert feature_mix_key(7, 320, 1280) == K_MIX
    assert logits_key(7, 1280, 1000) == K_LOGITS
    assert mbconv_key(112, 16, 56, 24, 3.0, 5, 2, 0) == K_MB  # integral float, as %d prints it


@pytest.mark.parametrize("bad", [{"expand": 2.5}, {"kernel": -1}, {"stride": "2"}])
def test_key_rejects_non_integers(bad):
    args = {"in_size": 112, "cin": 16, "out_size": 56, "cout": 24, "expand": 3, "kernel": 5, "stride": 2,
            "idskip": 0, **bad}
    with pytest.raises(SpecError, match=next(iter(bad))):
        mbconv_key(**args)


# Files ------------------------------------------------------------------------------------------


def test_load_official_layout(tmp_path):
    path = tmp_path / "mobile_trim.yaml"
    path.write_text(OFFICIAL_TEXT)
    table = LatencyTable.load(path)
    assert len(table) == 4 and K_MB in table and "Conv-nothing" not in table
    assert table.lookup(K_MB) == 5.264772727272727
    assert table.entries[K_MB] == LatencyEntry(5.264772727272727, 0.19495998666150827, 154)
    assert table.entries[K_FIRST] == LatencyEntry(6.123, 0.05, 982)
    assert table.lookup(K_LOGITS) == 1.25
    assert table.source == str(path) and table.statistic == "mean" and table.threads is None
    assert LatencyTable.load(path, device="Google Pixel 1").device == "Google Pixel 1"


def test_suite_layout_round_trip(tmp_path):
    table = small_table()
    path = table.save(tmp_path / "lut" / "cpu.yaml")
    raw = yaml.safe_load(path.read_text())
    assert raw["device"] == "Test CPU" and raw["threads"] == 2 and raw["statistic"] == "median"
    assert raw["entries"][K_MB] == {"mean": 3.0, "var": 0.2, "count": 10}  # the official per-key layout
    assert [p.name for p in path.parent.iterdir()] == ["cpu.yaml"]  # no temporary left behind
    loaded = LatencyTable.load(path)
    assert loaded == table and loaded.path == str(path)
    assert loaded.entries[K_MB_RES] == LatencyEntry(4.5, 0.3, 10)


def test_missing_key_names_key_file_and_search_space(tmp_path):
    path = tmp_path / "mobile_trim.yaml"
    path.write_text(OFFICIAL_TEXT)
    table = LatencyTable.load(path)
    missing = mbconv_key(112, 16, 56, 32, 3, 5, 2, 0)  # released proxyless_mobile's stage-1 width 32
    with pytest.raises(SpecError) as err:
        table.lookup(missing)
    msg = str(err.value)
    assert missing in msg and str(path) in msg and "search space" in msg
    with pytest.raises(SpecError, match="search space"):
        network_latency(table, [K_FIRST, missing])


@pytest.mark.parametrize("text, words", [
    ("- a\n- b\n", "must hold a mapping"),
    (f"{K_MB}:\n  count: 3\n  var: 0.1\n", "mean"),
    (f"{K_MB}: 5.0\n", "mean"),
    (f"{K_MB}:\n  mean: fast\n", "mean"),
    (f"{K_MB}:\n  mean: 1.0\n  std: 0.1\n", "std"),
    (f"{K_MB}:\n  mean: 1.0\n  count: 2.5\n", "count"),
    (f"{K_MB}: {{mean: 1.0\n", "not valid YAML"),
    ("{}\n", "no entries"),
    ("entries:\n  x: {mean: 1.0}\n", "device"),
    ("device: cpu\nentries: [1, 2]\n", "entries"),
    ("device: cpu\nunit: s\nentries:\n  x: {mean: 1.0}\n", "unit"),
    ("device: cpu\ncolour: red\nentries:\n  x: {mean: 1.0}\n", "colour"),
])
def test_malformed_file_is_one_clear_error(tmp_path, text, words):
    path = tmp_path / "lut.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        LatencyTable.load(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        LatencyTable.load(tmp_path / "absent.yaml")


# Measuring ------------------------------------------------------------------------------------


class Probe(nn.Module):
    """A small conv that records the mode, grad state and input shape of each call."""

    def __init__(self, calls: list):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.calls = calls

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled(), tuple(x.shape)))
        return self.drop(self.conv(x))


def test_measure_on_cpu_dedups_and_records_device():
    built: list[str] = []
    calls: list = []

    def factory(name):
        def make():
            built.append(name)
            return Probe(calls)
        return make

    items = [("a", factory("a"), (2, 3, 16, 16)), ("b", factory("b"), (1, 3, 8, 8)),
             ("a", factory("a-again"), (2, 3, 16, 16))]
    table = measure_latency_table(items, "cpu", repeats=5, warmup=2)
    assert built == ["a", "b"]  # the repeated key's factory is never called
    assert set(table.entries) == {"a", "b"}
    for entry in table.entries.values():
        assert entry.mean_ms > 0 and entry.var >= 0 and entry.count == 5
    assert len(calls) == 2 * (5 + 2)
    assert all(not training and not grad for training, grad, _ in calls)
    assert {shape for *_, shape in calls} == {(2, 3, 16, 16), (1, 3, 8, 8)}
    assert table.device == device_name("cpu") and table.device
    assert table.threads == torch.get_num_threads() and table.statistic == "median"
    with pytest.raises(SpecError, match="input shapes"):
        measure_latency_table([("a", factory("x"), (1, 3, 8, 8)), ("a", factory("y"), (2, 3, 8, 8))],
                              repeats=1, warmup=0)


def test_timings_are_taken_in_interleaved_rounds_after_every_warm_up():
    """A transient slowdown must not land on the few blocks timed while it lasted: every block is
    warmed up first, then timed a few calls at a time, round after round over all blocks."""
    calls: list = []
    shapes = {"a": (1, 3, 4, 4), "b": (1, 3, 5, 5), "c": (1, 3, 6, 6)}
    items = [(key, (lambda: Probe(calls)), shape) for key, shape in shapes.items()]
    table = measure_latency_table(items, "cpu", repeats=5, warmup=1, rounds=2)
    order = "".join({shape: key for key, shape in shapes.items()}[shape] for *_, shape in calls)
    assert order == "abc" + "aaabbbccc" + "aabbcc"  # warm-ups, then rounds of 3 and 2 timings
    assert all(entry.count == 5 for entry in table.entries.values())
    assert "5 timings in 2 interleaved rounds" in table.source
    one_each = measure_latency_table(items, "cpu", repeats=2, warmup=0, rounds=10)  # more rounds than timings
    assert all(entry.count == 2 for entry in one_each.entries.values())
    with pytest.raises(SpecError, match="rounds must be a positive integer"):
        measure_latency_table(items, "cpu", rounds=0)


def test_measure_stores_median_variance_and_count(monkeypatch):
    """With a fake clock, the stored numbers are the median, population variance and count of
    the per-call times."""
    import types

    import nas_impl.metrics.latency_lut as lut

    durations_ms = [1.0, 5.0, 2.0, 100.0, 3.0]
    ticks = []
    t = 0.0
    for d in durations_ms:  # each timed call reads the clock before and after
        ticks += [t, t + d / 1e3]
        t += 1.0
    clock = iter(ticks)
    monkeypatch.setattr(lut, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    table = measure_latency_table([("k", lambda: nn.Identity(), (1, 4))], "cpu", repeats=5, warmup=3)
    entry = table.entries["k"]
    mean = sum(durations_ms) / 5
    assert entry.mean_ms == pytest.approx(3.0)  # the median, not the mean (22.2)
    assert entry.var == pytest.approx(sum((d - mean) ** 2 for d in durations_ms) / 5)
    assert entry.count == 5


# Expected latency and loss --------------------------------------------------------------------


def test_expected_latency_one_hot_equals_chosen_sum():
    table = small_table()
    fixed = [K_FIRST, K_MIX, K_LOGITS]  # 6.0 + 2.5 + 1.25
    edges = [(torch.tensor([0.0, 1.0]), [K_MB, K_MB_RES]),  # chooses 4.5
             (torch.tensor([1.0, 0.0, 0.0]), [K_MB, K_MB_RES, None]),  # chooses 3.0
             (torch.tensor([0.0, 0.0, 1.0]), [K_MB, K_MB_RES, None])]  # chooses Zero: 0
    e = expected_latency(table, fixed, edges)
    assert e.item() == pytest.approx(6.0 + 2.5 + 1.25 + 4.5 + 3.0)
    assert network_latency(table, fixed + [K_MB_RES, K_MB, None]) == pytest.approx(17.25)
    mixed = expected_latency(table, [], [(torch.tensor([0.25, 0.5, 0.25]), [K_MB, K_MB_RES, None])])
    assert mixed.item() == pytest.approx(0.25 * 3.0 + 0.5 * 4.5)
    assert expected_latency(table, fixed, []).item() == pytest.approx(9.75)
    with pytest.raises(SpecError, match="edge 0"):
        expected_latency(table, [], [(torch.tensor([1.0]), [K_MB, None])])


def test_expected_latency_gradient_is_lut_values():
    table = small_table()
    p1 = torch.tensor([0.2, 0.3, 0.5], requires_grad=True)
    p2 = torch.tensor([0.6, 0.4], requires_grad=True)
    e = expected_latency(table, [K_FIRST], [(p1, [K_MB_RES, None, K_MB]), (p2, [K_MB, K_MB_RES])])
    e.backward()
    assert p1.grad.tolist() == pytest.approx([4.5, 0.0, 3.0])
    assert p2.grad.tolist() == pytest.approx([3.0, 4.5])
    # through a softmax too: dE/dalpha = p * (lat - E_edge)
    alpha = torch.tensor([0.1, -0.2], requires_grad=True)
    expected_latency(table, [], [(torch.softmax(alpha, 0), [K_MB, K_MB_RES])]).backward()
    q = [math.exp(0.1) / (math.exp(0.1) + math.exp(-0.2)), math.exp(-0.2) / (math.exp(0.1) + math.exp(-0.2))]
    edge = q[0] * 3.0 + q[1] * 4.5
    assert alpha.grad.tolist() == pytest.approx([q[0] * (3.0 - edge), q[1] * (4.5 - edge)])


def test_loss_forms_by_hand():
    ce, e, ref = 2.0, 70.0, 80.0
    ce_t = torch.tensor(ce)
    assert latency_loss(ce_t, torch.tensor(e), ref, "mul#log").item() == \
        pytest.approx(0.2 * 2.0 * (math.log(70.0) / math.log(80.0)) ** 0.3)
    assert latency_loss(ce_t, e, ref, "mul#log", alpha=1.0, beta=0.6).item() == \
        pytest.approx(1.0 * 2.0 * (math.log(70.0) / math.log(80.0)) ** 0.6)
    assert latency_loss(ce_t, e, ref, "add#linear").item() == pytest.approx(2.0 + 0.1 * (70.0 - 80.0) / 80.0)
    assert latency_loss(ce_t, e, ref, "add#linear", lam=0.2).item() == pytest.approx(2.0 - 0.2 / 8)
    assert latency_loss(ce_t, e, None, "add", lam=0.01).item() == pytest.approx(2.0 + 0.01 * 70.0)
    assert latency_loss(ce_t, torch.tensor(e), ref).item() == pytest.approx(
        0.4 * (math.log(70.0) / math.log(80.0)) ** 0.3)  # mul#log is the default form

    # the gradient reaches the expected latency: d/dE of alpha*ce*(log E/log ref)^beta
    et = torch.tensor(e, requires_grad=True)
    latency_loss(ce_t, et, ref, "mul#log").backward()
    by_hand = 0.2 * 2.0 * 0.3 * (math.log(70.0) / math.log(80.0)) ** (0.3 - 1) / (70.0 * math.log(80.0))
    assert et.grad.item() == pytest.approx(by_hand)


@pytest.mark.parametrize("form, ref, params, words", [
    ("mul", 80.0, {}, "unknown"),
    ("add", None, {}, "lam"),
    ("add#linear", 80.0, {"alpha": 1.0}, "alpha"),
    ("mul#log", None, {}, "reference"),
    ("mul#log", 1.0, {}, "cannot be 1"),
    ("add#linear", 0.0, {}, "reference"),
])
def test_loss_bad_arguments(form, ref, params, words):
    with pytest.raises(SpecError, match=words):
        latency_loss(torch.tensor(1.0), 50.0, ref, form, **params)
