"""TensorFlow-style training pieces that AutoShrink's ImageNet recipe uses: RMSProp with TF 1's
semantics, the exponential moving average of the weights that evaluation reads, and a schedule
that moves once an epoch. Golden values come from plain NumPy recurrences written from the TF
documentation of ApplyRMSProp and ExponentialMovingAverage, not from the implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nas_impl.errors import SpecError
from nas_impl.training import load_checkpoint, lr_at, recipe_from_dict
from nas_impl.training.ema import WeightEMA
from nas_impl.training.optim import TFRMSprop
from tests.unit.test_training import assert_same_weights, make_trainer


def test_rmsprop_tf_follows_tensorflows_update():
    lr, decay, momentum, eps, wd = 0.05, 0.9, 0.9, 1.0, 0.01
    w0 = np.array([0.5, -1.0, 2.0])
    grads = [np.array([0.1, -0.3, 0.7]), np.array([-0.2, 0.4, 0.05]), np.array([0.3, 0.3, -0.6])]
    w, ms, mom = w0.copy(), np.ones(3), np.zeros(3)
    for g in grads:
        g = g + wd * w
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + eps)
        w = w - mom
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = TFRMSprop([p], lr=lr, decay=decay, momentum=momentum, eps=eps, weight_decay=wd)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12)
    torch_rms = torch.nn.Parameter(torch.tensor(w0))
    other = torch.optim.RMSprop([torch_rms], lr=lr, alpha=decay, momentum=momentum, eps=eps, weight_decay=wd)
    for g in grads:
        torch_rms.grad = torch.tensor(g)
        other.step()
    assert not np.allclose(torch_rms.detach().numpy(), w)  # why the suite has its own


def test_the_moving_average_follows_tensorflows_num_updates_rule():
    model = torch.nn.Linear(2, 1, bias=False).double()
    ema = WeightEMA(model, decay=0.5)
    shadow = model.weight.detach().numpy().copy()
    for n in range(1, 6):
        with torch.no_grad():
            model.weight.add_(float(n))
        ema.update()
        d = min(0.5, (1 + n) / (10 + n))
        shadow = d * shadow + (1 - d) * model.weight.detach().numpy()
    np.testing.assert_allclose(ema.shadow[0].numpy(), shadow, rtol=1e-12)
    assert ema.updates == 5 and [round(min(0.999, (1 + n) / (10 + n)), 6) for n in (1, 100)] == [0.181818, 0.918182]


def test_training_evaluates_and_saves_the_moving_average(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, optimizer="rmsprop_tf", lr=0.01, rmsprop_eps=1.0, ema_decay=0.9,
                           train_subset=128, test_subset=64)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    shadow = [p.detach().double().clone() for p in params]
    steps = []

    def record(*_):
        steps.append(1)
        d = min(0.9, (1 + len(steps)) / (10 + len(steps)))
        for s, p in zip(shadow, params):
            s.mul_(d).add_(p.detach().double(), alpha=1 - d)

    trainer.optimizer.register_step_post_hook(record)
    trainer.fit()
    names = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    saved = load_checkpoint(trainer.checkpoint_path)["eval_model"]
    assert len(steps) == 4
    for name, s, p in zip(names, shadow, params):
        torch.testing.assert_close(saved[name].double(), s, rtol=1e-5, atol=1e-7)
        assert not torch.equal(saved[name], p.detach())  # the average, not the last weights


def test_a_run_with_a_moving_average_resumes_bit_exactly(tmp_path):
    overrides = {"epochs": 2, "optimizer": "rmsprop_tf", "lr": 0.01, "ema_decay": 0.99, "train_subset": 96,
                 "test_subset": 64}
    whole = make_trainer(tmp_path, "whole", **overrides)
    whole.fit()
    parts = make_trainer(tmp_path, "parts", **overrides)
    parts.fit(stop_after=1)
    resumed = make_trainer(tmp_path, "parts", **overrides)
    resumed.fit(resume=True)
    assert_same_weights(whole.model, resumed.model)
    a, b = (load_checkpoint(t.checkpoint_path) for t in (whole, resumed))
    assert all(torch.equal(a["eval_model"][k], b["eval_model"][k]) for k in a["eval_model"])
    assert a["ema"]["updates"] == b["ema"]["updates"] == 2 * 3


def test_lr_per_epoch_is_tensorflows_cosine_with_warmup_fed_the_epoch():
    recipe = recipe_from_dict({"epochs": 30, "lr": 0.1, "schedule": "cosine", "warmup_epochs": 10,
                               "warmup_lr": 0.0, "lr_per_epoch": True})
    steps_per_epoch = 7
    for epoch in range(30):
        # api/network/decay/util.py cosine_decay_with_warmup(global_step=epoch, total 30, warmup 10, from 0)
        expected = 0.1 * epoch / 10 if epoch < 10 else 0.5 * 0.1 * (1 + math.cos(math.pi * (epoch - 10) / 20))
        for step in (0, 3, 6):
            assert lr_at(recipe, epoch * steps_per_epoch + step, steps_per_epoch) == pytest.approx(expected)
    smooth = recipe_from_dict({"epochs": 30, "lr": 0.1, "schedule": "cosine", "warmup_epochs": 10})
    assert lr_at(smooth, 3, steps_per_epoch) != lr_at(smooth, 0, steps_per_epoch)


@pytest.mark.parametrize("raw, key", [({"ema_decay": 1.0}, "ema_decay"), ({"ema_decay": 0.9, "asgd_nonmono": 5}, "ema_decay"),
                                      ({"optimizer": "rmsprop_tf", "rmsprop_eps": 0}, "rmsprop_eps"),
                                      ({"optimizer": "rmsprop"}, "optimizer")])
def test_bad_values_name_their_key(raw, key):
    with pytest.raises(SpecError, match=f"'{key}'"):
        recipe_from_dict({"epochs": 3, **raw})
