"""MemNAS's grow-and-trim search behind the suite's search-method interface (memnas.md §3).

One stage, `search`, on the shared epoch loop: one loop epoch is one round.

- Round 0: the one-cell networks (`candidates.initial`: all 98, a seeded sample of `round0`, or with
  `round0: 0` the base spec alone) are trained and measured; the most accurate is the first base.
- Round r >= 1: every grown and trimmed candidate of the base (`candidates.round_candidates`; those
  that do not build, or on which the code's memory proxies fail with `memory: code`, are dropped
  and counted as `unbuildable`). From round `controller_from` on, the controller (an
  LSTM(100) regressor, `controller.py`) is fitted on every measured network of earlier rounds,
  labelled 100 x its reward against its own round's base, and ranks the candidates; the top `k` are
  trained (earlier rounds train them all), plus `audit` drawn at random from the rest, which only
  measure the ranking. The round's best (highest reward, or accuracy with `select: accuracy`) among
  the top-k becomes the next base.
- Every candidate is trained by the suite's one trainer (`Trainer`) with the search recipe's weight
  keys, on the training split less `valid_size` held-out images, and scored on those (the column
  the trainer logs as `test_top1` is then the held-out accuracy); `valid_from: test` scores on the
  test split, as the official search did. Its memory: W = parameters without BN x 4 bytes and I = the
  peak of live feature maps at batch 1 (`nas_impl.metrics.memory`), or the code's `cal_weight` /
  `cal_in` element counts (`memory: code`).

Each candidate's run lives in `candidates/r<round>/c<index>/` (train_log.csv, metrics.json, and its
checkpoint.pt until the round ends); a rerun with --resume continues the last round, each candidate
from its own checkpoint (a finished one is read, not retrained). The result:
`arch.yaml` (the last round's best), and `search.json` with every measured network
(`details.measured`) and each round's summary (`details.rounds`).
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError, SpecError
from nas_impl.methods.interface import SearchJob, SearchMethod, SearchedShape, SearchResult, Stage, StageResult
from nas_impl.methods.memnas import candidates as grow_trim
from nas_impl.methods.memnas.recipe import INFO, MemNASSettings, SearchRecipe
from nas_impl.methods.memnas.reward import REWARDS, Measured, controller_label
from nas_impl.training.checkpoint import require_keys
from nas_impl.training.epoch_loop import EpochLoop, RunFiles

LOG_COLUMNS = ["round", "candidates", "unbuildable", "trained", "controller_samples", "controller_valid_loss",
               "rank_corr", "rank_corr_audit", "best_acc", "best_reward", "best_weight_memory",
               "best_feature_memory", "best_cells", "epoch_s"]
FILES = RunFiles(log="search_log.csv", log_columns=LOG_COLUMNS, checkpoint="search_checkpoint.pt",
                 checkpoint_format="nasrepro-memnas-search-v1", results=("search.json", "arch.yaml", "arch-*.yaml"))
CANDIDATES_DIR = "candidates"


@dataclass(frozen=True)
class Record:
    """One trained and measured network."""

    round: int
    index: int  # its position in the round's candidate list
    role: str  # all (trained without ranking), top (top-k), audit (random, outside the top-k)
    spec: dict[str, Any]
    acc: float  # top-1 % on the held-out images (or the test split)
    weight_memory: float
    feature_memory: float
    predicted: float | None = None  # the controller's label prediction (100 R), if it ranked the round
    reward: float | None = None  # against its round's base (round 0: against round 0's best)

    @property
    def measured(self) -> Measured:
        return Measured(self.acc, self.weight_memory, self.feature_memory)

    @property
    def cells(self) -> int:
        return max(len(block) for block in self.spec["blocks"])


def code_memory(spec: dict[str, Any], settings: MemNASSettings) -> tuple[float, float]:
    """(W, I) as the official `cal_weight` / `cal_in` count them (elements; code_memory.py)."""
    from nas_impl.methods.memnas.code_memory import code_feature_count, code_weight_count

    return (float(code_weight_count(spec, settings.memory_channels)),
            float(code_feature_count(spec, settings.memory_channels)))


def memory_of(spec: dict[str, Any], input_size: tuple[int, ...], settings: MemNASSettings) -> tuple[float, float]:
    """(W, I): with the liveness rule the bytes `arch_metrics.json` records for the network (W =
    params_no_norm x 4, compare's params memory; I = the peak of live feature maps), or the code's
    element counts."""
    if settings.memory == "code":
        return code_memory(spec, settings)
    from nas_impl.metrics import model_metrics
    from nas_impl.models import build_model

    metrics = model_metrics(build_model(spec), input_size)
    return 4.0 * metrics["params_no_norm"], float(metrics["peak_activation_bytes"])


def reward_of(settings: MemNASSettings, base: Record, record: Record) -> float:
    if settings.reward == "paper":
        return REWARDS["paper"](base.measured, record.measured, lam=settings.lam)
    return REWARDS["code"](base.measured, record.measured)


def candidate_data(job: SearchJob):
    """Loaders `train` and `scored` (held-out part of the training split, or the test split)."""
    from nas_impl.run_data import Holdout, Whole, run_data

    recipe: SearchRecipe = job.recipe
    s = recipe.memnas
    device = torch.device(job.device)
    if s.valid_from == "test":
        data = run_data(job.dataset, recipe.weights, job.seed, device, job.data_root, Whole(), evaluate="test")
        data.loaders["scored"] = data.loaders.pop("eval")
    else:
        plan = Holdout(0.0, s.split_seed, s.valid_size, recipe.weights.eval_batch_size, record_key="search_split",
                       keys=("valid_size", "valid_size"), size=s.valid_size)
        data = run_data(job.dataset, recipe.weights, job.seed, device, job.data_root, plan, evaluate=None)
    if len(data.loaders["train"]) == 0:
        raise NasReproError(f"search recipe key 'batch_size' = {recipe.weights.batch_size} is larger than the "
                            "candidates' training images: lower it, or change 'valid_size' or 'train_subset'")
    return data


def usable(spec: dict[str, Any], settings: MemNASSettings) -> bool:
    """It builds, and with `memory: code` the official proxies do not fail on it (they raise on
    some cell wirings, as the official code does: code_memory.py)."""
    from nas_impl.models import normalize_spec

    try:
        normalize_spec(spec)
        if settings.memory == "code":
            code_memory(spec, settings)
    except (SpecError, NasReproError):
        return False
    return True


class RoundsJob:
    """The rounds as the shared epoch loop's job; its state is every measured network so far."""

    def __init__(self, job: SearchJob, base: dict[str, Any], data: Any) -> None:
        self.job, self.data = job, data
        self.settings: MemNASSettings = job.recipe.memnas
        self.base_spec = base
        self.input_size = tuple(data.input_size)
        self.records: list[Record] = []
        self.bases: list[Record] = []  # each round's best
        self.candidates_dir = Path(job.out_dir) / CANDIDATES_DIR
        self._identity = {"recipe": job.recipe.to_dict(), "seed": job.seed, "dataset": job.dataset,
                          "base": base}

    # -- the epoch loop's job ---------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return self._identity

    def state(self) -> dict[str, Any]:
        return {"records": [asdict(r) for r in self.records], "bases": [asdict(r) for r in self.bases]}

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        require_keys(state, ("records", "bases"), path)
        self.records = [Record(**r) for r in state["records"]]
        self.bases = [Record(**r) for r in state["bases"]]

    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        start = time.perf_counter()
        row = self.round_zero() if epoch == 0 else self.grow_trim_round(epoch)
        self.drop_checkpoints(epoch)
        seconds = time.perf_counter() - start
        best = self.bases[-1]
        print(f"round {epoch}: {row['trained']} trained of {row['candidates']}, best {best.acc:.2f}% "
              f"({best.cells} cells a block), reward {best.reward if best.reward is not None else '-'}, "
              f"{seconds:.0f} s", file=sys.stderr, flush=True)
        return {**row, "round": epoch, "epoch": epoch + 1, "best_acc": best.acc,
                "best_reward": best.reward if best.reward is not None else "",
                "best_weight_memory": best.weight_memory, "best_feature_memory": best.feature_memory,
                "best_cells": best.cells, "epoch_s": seconds}

    # -- rounds -----------------------------------------------------------------------------------
    def round_zero(self) -> dict[str, Any]:
        s = self.settings
        if s.round0 == 0:
            nets = [(0, self.base_spec)]
        else:
            every = list(enumerate(grow_trim.initial(self.base_spec)))
            chosen = sorted(random.Random(f"memnas-round0-{self.job.seed}").sample(range(len(every)), s.round0))
            nets = [every[i] for i in chosen]
        measured = [self.train_and_measure(0, i, "all", spec) for i, spec in nets]
        best = max(measured, key=lambda r: r.acc)  # no earlier network to reward against
        measured = [self._with_reward(r, best) for r in measured]
        best = next(r for r in measured if r.index == best.index)
        self.records.extend(measured)
        self.bases.append(best)
        return {"candidates": len(nets), "unbuildable": 0, "trained": len(nets), "controller_samples": 0,
                "controller_valid_loss": "", "rank_corr": "", "rank_corr_audit": ""}

    def grow_trim_round(self, r: int) -> dict[str, Any]:
        s, base = self.settings, self.bases[-1]
        proposed = grow_trim.round_candidates(base.spec)
        specs = [spec for spec in proposed if usable(spec, s)]
        row: dict[str, Any] = {"candidates": len(specs), "unbuildable": len(proposed) - len(specs),
                               "controller_samples": 0, "controller_valid_loss": "", "rank_corr": "",
                               "rank_corr_audit": ""}
        predicted: list[float | None] = [None] * len(specs)
        if r >= s.controller_from:
            predicted, fit = self.rank(specs, r)
            row.update(controller_samples=len(self.records), controller_valid_loss=fit.best_valid_loss)
            from nas_impl.methods.memnas.controller import top_k

            top = top_k(torch.tensor(predicted), min(s.k, len(specs)))
            rest = [i for i in range(len(specs)) if i not in set(top)]
            audit = sorted(random.Random(f"memnas-audit-{self.job.seed}-{r}").sample(rest, min(s.audit, len(rest))))
            plan = [(i, "top") for i in top] + [(i, "audit") for i in audit]
        else:
            plan = [(i, "all") for i in range(len(specs))]
        measured = [self._with_reward(self.train_and_measure(r, i, role, specs[i], predicted[i]), base)
                    for i, role in plan]
        self.records.extend(measured)
        eligible = [m for m in measured if m.role != "audit"]
        key = (lambda m: m.reward) if s.select == "reward" else (lambda m: m.acc)
        self.bases.append(max(eligible, key=key))
        if r >= s.controller_from:
            row["rank_corr"] = _correlation(measured)
            row["rank_corr_audit"] = _correlation([m for m in measured if m.role == "audit"])
        row["trained"] = len(measured)
        return row

    def rank(self, specs: list[dict[str, Any]], r: int):
        """The controller's predicted labels for `specs`, fitted on every measured network so far."""
        from nas_impl.methods.memnas.controller import (ControllerSettings, controller_input, fit_controller,
                                                        predict, sequence_length)

        s = self.settings
        train_specs = [m.spec for m in self.records]
        cells = sequence_length(train_specs + specs, s.pad_extra)
        x = controller_input(train_specs, cells)
        y = torch.tensor([controller_label(m.reward) for m in self.records], dtype=torch.float32)
        settings = ControllerSettings(hidden=s.controller_hidden, epochs=s.controller_epochs,
                                      batch_size=s.controller_batch_size, lr=s.controller_lr, valid=s.controller_valid)
        fit = fit_controller(x, y, settings, seed=self.job.seed * 1_009 + r)
        return predict(fit.model, controller_input(specs, cells)).tolist(), fit

    # -- one candidate ----------------------------------------------------------------------------
    def train_and_measure(self, r: int, index: int, role: str, spec: dict[str, Any],
                          predicted: float | None = None) -> Record:
        acc = self.train_candidate(spec, self.candidates_dir / f"r{r}" / f"c{index:04d}", r, index)
        weight, feature = memory_of(spec, self.input_size, self.settings)
        return Record(r, index, role, spec, acc, weight, feature, predicted)

    def train_candidate(self, spec: dict[str, Any], out_dir: Path, r: int, index: int) -> float:
        """Its held-out top-1 %, trained by the shared trainer. A resumed search continues an
        interrupted candidate, or reads a finished one, from its own checkpoint (the trainer's
        identity check: recipe, seed, spec); the round's checkpoints go once the round is done."""
        from nas_impl.models import build_model
        from nas_impl.training.trainer import Trainer

        seed = self.job.seed * 1_000_003 + r * 1_009 + index
        torch.manual_seed(seed)
        trainer = Trainer(build_model(spec), self.job.recipe.weights, self.data.loaders["train"],
                          self.data.loaders["scored"], out_dir=out_dir, seed=seed, device=self.job.device,
                          record={**self.data.record, "memnas": {"round": r, "index": index}})
        return float(trainer.fit(resume=self.job.resume)["top1"])

    def drop_checkpoints(self, r: int) -> None:
        """A finished round's candidate weights are not reused (its results are in the search's state)."""
        for path in (self.candidates_dir / f"r{r}").glob("c*/checkpoint.pt"):
            path.unlink()

    def _with_reward(self, record: Record, base: Record) -> Record:
        return Record(**{**asdict(record), "reward": reward_of(self.settings, base, record)})


def _correlation(measured: list[Record]) -> float | str:
    from nas_impl.methods.memnas.controller import rank_correlation

    pairs = [(m.predicted, controller_label(m.reward)) for m in measured if m.predicted is not None]
    if len(pairs) < 2:
        return ""
    value = rank_correlation([p for p, _ in pairs], [t for _, t in pairs])
    return "" if math.isnan(value) else value


class MemNAS(SearchMethod):
    info = INFO

    def run_stage(self, stage: Stage, job: SearchJob) -> SearchResult | StageResult:
        from nas_impl.metrics import spec_macs
        from nas_impl.runs import adapt_spec

        recipe: SearchRecipe = job.recipe
        if job.base_spec.get("family") != "memnas-cells":
            raise NasReproError(f"MemNAS searches a 'memnas-cells' network, not a '{job.base_spec.get('family')}' one")
        data = candidate_data(job)
        base, _ = adapt_spec(job.base_spec, data.num_classes, data.input_size[0])
        rounds = RoundsJob(job, base, data)
        if not job.resume:
            shutil.rmtree(rounds.candidates_dir, ignore_errors=True)
        loop = EpochLoop(job.out_dir, FILES, seed=job.seed, epochs=recipe.memnas.rounds + 1, device=job.device)
        if not loop.run(rounds, job.resume, job.stop_after):
            return StageResult(stage.name, loop.stopped(), loop.stopped_after)
        best = rounds.bases[-1]
        input_size = tuple(data.input_size)
        base_macs, macs = spec_macs(base, input_size), spec_macs(best.spec, input_size)
        memory_unit = "elements" if recipe.memnas.memory == "code" else "bytes"
        shape = SearchedShape(best.spec, macs, macs / base_macs,
                              {"round": best.round, "index": best.index, "held_out_top1": best.acc,
                               "reward": best.reward, "weight_memory": best.weight_memory,
                               "feature_memory": best.feature_memory, "memory_unit": memory_unit})
        details = {"rounds": loop.history, "memory": recipe.memnas.memory, "memory_unit": memory_unit,
                   "reward": recipe.memnas.reward, "scored_on": recipe.memnas.valid_from,
                   "bases": [{"round": b.round, "index": b.index, "acc": b.acc, "reward": b.reward,
                              "blocks": b.spec["blocks"]} for b in rounds.bases],
                   "measured": [{k: v for k, v in asdict(m).items() if k != "spec"} | {"blocks": m.spec["blocks"]}
                                for m in rounds.records],
                   "trained": len(rounds.records)}
        result = SearchResult("memnas", base_macs, {"cells": shape}, "cells", loop.elapsed_s, details,
                              {"recipe": recipe.to_dict(), "record": {**job.record, **data.record},
                               "run": loop.provenance()})
        result.write(job.out_dir)
        return result


METHOD = MemNAS()
