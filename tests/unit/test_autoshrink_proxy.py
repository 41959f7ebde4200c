"""The CNN search's proxy (nas_impl/methods/autoshrink/proxy.py): the proxy splits, the official
early stops of proxy_estimator.py, and that training a step's candidates in lockstep gives each
exactly what training it alone on the same stream gives."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from nas_impl.methods.autoshrink import proxy
from nas_impl.methods.autoshrink.proxy import ProxySettings, proxy_indices, train_candidates


def tiny_data(n: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 3, 4, 4, generator=g) + y.view(-1, 1, 1, 1).float()  # learnable
    return x, y


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


SETTINGS = ProxySettings(epochs=3, batch_size=32, valid_batch_size=16, lr=1e-2)


def test_lockstep_training_equals_training_each_candidate_alone():
    train, valid = tiny_data(), tiny_data(48, seed=1)
    models = [tiny_model(1), tiny_model(2)]
    alone = [train_candidates([copy.deepcopy(m)], train, valid, SETTINGS, seed=5)[0] for m in models]
    together = train_candidates(models, train, valid, SETTINGS, seed=5)
    for a, b in zip(alone, together):
        assert a.history == b.history and a.best_valid_acc == b.best_valid_acc
        for pa, pb in zip(a.model.state_dict().values(), b.model.state_dict().values()):
            assert torch.equal(pa, pb)
    assert together[0].best_valid_acc > 0.5  # it learned (chance is 1/3)


def scripted(monkeypatch, results):
    """evaluate() returns the given (accuracy, loss) per call, in order."""
    calls = iter(results)
    monkeypatch.setattr(proxy, "evaluate", lambda *args: next(calls))


@pytest.mark.parametrize("results, epochs, reason", [
    ([(0.5, 0.1), (0.6, 0.1)] + [(0.55, 0.1)] * 5 + [(0.9, 0.1)], 7, "5 epochs without"),
    ([(0.5, 0.1), (0.3, 0.1), (0.3, 0.1), (0.19, 0.1)], 4, "below 0.2 after 4 epochs"),
    ([(0.5, 0.1), (0.6, 100.0)], 2, "above 3x the moving train loss"),
])
def test_the_official_early_stops(monkeypatch, results, epochs, reason):
    scripted(monkeypatch, results)
    run = train_candidates([tiny_model(0)], tiny_data(), tiny_data(48, 1),
                           ProxySettings(epochs=20, batch_size=32, lr=1e-3), seed=0)[0]
    assert run.epochs == epochs and reason in run.stopped
    assert run.best_valid_acc == max(acc for acc, _ in results[:epochs])


def test_an_epoch_ends_early_once_the_moving_train_accuracy_passes_0_98(monkeypatch):
    steps = []
    original = proxy.batches_forever

    def counting(*args):
        for batch in original(*args):
            steps.append(1)
            yield batch

    monkeypatch.setattr(proxy, "batches_forever", counting)
    x = torch.zeros(64, 3, 4, 4)
    y = torch.zeros(64, dtype=torch.int64)  # one class: accuracy 1 from the first steps on
    model = tiny_model(0)
    with torch.no_grad():
        model[-1].bias.copy_(torch.tensor([10.0, 0.0, 0.0]))
    run = train_candidates([model], (x, y), (x, y), ProxySettings(epochs=2, batch_size=8, lr=1e-4), seed=0)[0]
    assert run.epochs == 2 and len(steps) == 2  # one step an epoch instead of 8


def test_proxy_splits():
    train_y = torch.arange(3000) % 10
    test_y = torch.arange(1000) % 10
    settings = ProxySettings(per_class_train=50, per_class_valid=20)
    train_idx, split, valid_idx = proxy_indices(train_y, test_y, settings)
    assert split == "train" and not set(train_idx.tolist()) & set(valid_idx.tolist())
    assert torch.bincount(train_y[train_idx]).tolist() == [50] * 10
    assert torch.bincount(train_y[valid_idx]).tolist() == [20] * 10
    official = ProxySettings(per_class_train=50, per_class_valid=200, valid_from="test")
    _, split, picks = proxy_indices(train_y, test_y, official)
    assert split == "test" and torch.bincount(test_y[picks]).tolist() == [200] * 10
    assert len(set(picks.tolist())) < len(picks)  # 200 draws from 100 images a class: with replacement
    assert torch.equal(picks, proxy_indices(train_y, test_y, official)[2])  # seeded
