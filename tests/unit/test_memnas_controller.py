"""MemNAS's structure-correlation controller (nas_impl.methods.memnas.controller; utils/controller.py
and utils/general.py of MemNAS/MemNAS at f9a9c65): its padded cell-sequence input, Spearman's rho,
that it learns a ranking, and that it keeps the best-validation weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from nas_impl.errors import NasReproError
from nas_impl.methods.memnas.candidates import grow, trim_edges, trim_ops
from nas_impl.methods.memnas.controller import (Controller, ControllerSettings, controller_input, fit_controller,
                                                predict, rank_correlation, sequence_length, top_k,
                                                validation_count)
from nas_impl.models.memnas_cells import encode_cells, parse_cell

NET53_PATH = Path(__file__).resolve().parents[2] / "replications" / "memnas" / "archs" / "round0-net53.yaml"
# net53's cell 'in14:fac7 + in14:sep3 -> add @13' as the official 61 numbers: input 1 one-hot over
# 15 locations (14 -> position 14), input 2 (15 + 14 = 29), output (30 + 13 = 43), op 1 over 7 ops
# (fac7 = op 3 -> 45 + 3 = 48), op 2 (sep3 = op 5 -> 52 + 5 = 57), combine [1, 0] = add (59).
NET53_ONES = {14, 29, 43, 48, 57, 59}


@pytest.fixture(scope="module")
def net53() -> dict:
    return yaml.safe_load(NET53_PATH.read_text())


def test_controller_input_pads_each_block_at_its_end(net53):
    grown = grow(net53)[-1]  # every block: net53's cell, then 'in13:conv3 + in13:conv3 -> add @12'
    specs = [net53, grown]
    cells = sequence_length(specs)
    assert cells == 2 + 2  # the longest block (2 cells) plus the official pad_extra 2
    assert sequence_length(specs, pad_extra=0) == 2
    x = controller_input(specs, cells)
    assert x.shape == (2, 5 * 4, 61) and x.dtype == torch.float32
    live = {0: {0}, 1: {0, 1}}  # cells present per block: net53 one, the grown net two
    for n, spec in enumerate(specs):
        encoded = encode_cells(spec)
        for b in range(5):
            for c in range(4):
                row = x[n, 4 * b + c]
                if c in live[n]:
                    assert torch.equal(row, torch.tensor(encoded[b][c]))
                else:
                    assert torch.count_nonzero(row) == 0, (n, b, c)
            assert set(torch.nonzero(x[n, 4 * b]).flatten().tolist()) == NET53_ONES
    grown_cell = x[1, 1]  # input 1 at 13, input 2 at 15 + 13 = 28, output 12 -> 42, conv3 = op 6 -> 51 and 58, add
    assert set(torch.nonzero(grown_cell).flatten().tolist()) == {13, 28, 42, 51, 58, 59}
    assert torch.equal(x[0], controller_input([net53], cells)[0])  # padding does not depend on the batch
    with pytest.raises(NasReproError, match="sequence_length"):
        controller_input([grown], 1)  # 2 cells per block do not fit in 1


def test_rank_correlation_and_top_k_against_hand_values():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation(torch.tensor([0.5, 9.0, -3.0]), [2, 3, 1]) == pytest.approx(1.0)  # ranks only
    # ties: a = [1, 2, 2, 3] -> ranks [1, 2.5, 2.5, 4], b = [1, 3, 2, 4] -> ranks [1, 3, 2, 4];
    # centred (mean 2.5): [-1.5, 0, 0, 1.5] and [-1.5, 0.5, -0.5, 1.5]; sum of products 4.5,
    # sums of squares 4.5 and 5: rho = 4.5 / sqrt(22.5) = 3 / sqrt(10).
    assert rank_correlation([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))
    # a = [1, 1, 2] -> ranks [1.5, 1.5, 3], centred [-0.5, -0.5, 1]; b = [1, 2, 3] centred [-1, 0, 1]:
    # rho = 1.5 / sqrt(1.5 x 2) = sqrt(3) / 2.
    assert rank_correlation([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))  # undefined for a constant side
    with pytest.raises(NasReproError):
        rank_correlation([1, 2, 3], [1, 2])
    assert top_k(torch.tensor([0.1, 0.9, 0.5, 0.9, -2.0]), 3) == [1, 3, 2]  # tie 0.9: the lower index first
    assert top_k([3.0, 1.0], 5) == [0, 1] and top_k([3.0, 1.0], 0) == []


def _hidden_score(spec: dict) -> float:
    """A fixed function of the cells the controller never sees: per-op weights, an input term
    and an op x op interaction, summed over every cell of every block."""
    weight = {"avg3": 0.2, "max3": -0.3, "dil3": 0.8, "fac7": 1.0, "sep5": 0.6, "sep3": 0.4, "conv3": 1.2,
              "none": -1.0}
    total = 0.0
    for block in spec["blocks"]:
        for text in block:
            cell = parse_cell(text)
            total += (weight[cell.op1] + 0.5 * weight[cell.op2] + 0.7 * (cell.in1 != 14) - 0.4 * (cell.in2 != 14)
                      + 0.6 * weight[cell.op1] * weight[cell.op2])
    return total


def test_controller_learns_a_synthetic_ranking_of_net53s_candidates(net53):
    specs = grow(net53) + trim_ops(net53) + trim_edges(net53)
    assert len(specs) == 196 + 10  # 49 x 2 x 2 grown, 5 blocks x 2 ops trimmed, no edge to trim
    # labels like the official ones: the gain over the base network (here in the hidden score)
    y = torch.tensor([_hidden_score(spec) - _hidden_score(net53) for spec in specs])
    x = controller_input(specs, sequence_length(specs))
    order = torch.randperm(len(specs), generator=torch.Generator().manual_seed(1))
    x, y = x[order], y[order]
    rng_before = torch.random.get_rng_state()
    fit = fit_controller(x[:150], y[:150], ControllerSettings(epochs=80), seed=0)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # only its own generator was used
    assert fit.valid_count == 50 and fit.epochs_run == 80  # the official split: first 50 validate
    rho = rank_correlation(predict(fit.model, x[150:]), y[150:])
    random_rhos = [rank_correlation(predict(Controller(100, torch.Generator().manual_seed(s)), x[150:]), y[150:])
                   for s in range(8)]
    baseline = sum(abs(r) for r in random_rhos) / len(random_rhos)
    assert baseline < 0.4, random_rhos  # untrained controllers rank no better than chance-ish
    assert rho > 0.6 and rho > max(abs(r) for r in random_rhos) + 0.3, (rho, random_rhos)


def test_best_validation_weights_are_kept_and_a_seed_repeats():
    gen = torch.Generator().manual_seed(7)
    x = (torch.rand(60, 8, 61, generator=gen) < 0.1).float()
    x[:, -1, 0] = (torch.rand(60, generator=gen) < 0.5).float()
    y = 4 * (2 * x[:, -1, 0] - 1) + torch.randn(60, generator=gen)  # few noisy samples: it soon overfits
    settings = ControllerSettings(hidden=16, epochs=60, batch_size=8, lr=3e-3, valid=50)
    fit = fit_controller(x, y, settings, seed=3)
    assert fit.valid_count == 60 // 5  # too few for the official 50: the suite's first n // 5
    assert len(fit.valid_loss) == len(fit.train_loss) == fit.epochs_run == 60
    best = min(range(60), key=lambda i: (fit.valid_loss[i], i))  # the first epoch reaching the minimum
    assert fit.best_epoch == best + 1 and fit.best_valid_loss == fit.valid_loss[best]
    assert fit.best_epoch < 60 and fit.valid_loss[-1] > fit.best_valid_loss  # the last epoch is not the best
    recomputed = torch.mean((predict(fit.model, x[:12]) - y[:12]) ** 2).item()
    assert recomputed == pytest.approx(fit.best_valid_loss, rel=1e-5)  # the returned weights are the best's
    again = fit_controller(x, y, settings, seed=3)
    assert torch.equal(predict(fit.model, x), predict(again.model, x))
    assert not torch.equal(predict(fit.model, x), predict(fit_controller(x, y, settings, seed=4).model, x))


def test_validation_split_rule():
    assert validation_count(150, 50) == 50 and validation_count(101, 50) == 50  # official: first 50
    assert validation_count(100, 50) == 20 and validation_count(9, 50) == 1 and validation_count(2, 50) == 1
    assert validation_count(1, 50) == 0
    fit = fit_controller(torch.zeros(1, 5, 61), torch.tensor([1.0]), ControllerSettings(hidden=4, epochs=3))
    assert fit.valid_count == 0 and fit.best_epoch == 3 and fit.valid_loss == []
    with pytest.raises(NasReproError):
        fit_controller(torch.zeros(3, 5, 60), torch.zeros(3))
    with pytest.raises(NasReproError):
        ControllerSettings(epochs=0)
