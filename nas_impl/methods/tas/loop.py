"""A whole TAS search: epochs of alternating steps over a class-balanced 50/50 split.

The first half of the training set trains the super-network's weights, the second half its
architecture logits (tas.md §8). Every epoch is logged to `search_log.csv` and checkpointed,
so an interrupted search resumes bit-exactly, like the Trainer's runs. The FLOP loss and the band
compare the argmax shape's MACs under the recipe's `flop_rule` (`band_macs`) with the target;
every reported MAC count is the built network's (`argmax_macs`). The outputs are the argmax
shape after the last epoch (`arch_last.yaml`), the 'best' shape of the recipe's `select`
(`arch_best.yaml`, when the recipe selects one), the one retrained (`arch.yaml`: the last by
default, as TAS's scripts), and `search.json`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.methods.interface import SearchedShape, SearchResult, StageResult, ratio_target
from nas_impl.methods.memory_format import sliced_net_memory_format
from nas_impl.methods.tas.derive import derive_spec
from nas_impl.methods.tas.flops import argmax_macs, band_macs, expected_macs
from nas_impl.methods.tas.recipe import SearchRecipe
from nas_impl.methods.tas.search import eval_top1, search_step, tau_at
from nas_impl.methods.tas.search_net import TASResNet
from nas_impl.metrics import count_macs
from nas_impl.models import build_model, normalize_spec, save_spec
from nas_impl.run_data import Halves, RunData, run_data
from nas_impl.training.checkpoint import load_weights, require_keys
from nas_impl.training.epoch_loop import EpochLoop, RunFiles
from nas_impl.training.optim import build_optimizer

LOG_COLUMNS = ["epoch", "lr", "tau", "train_loss", "train_top1", "valid_ce", "valid_top1", "eval_top1", "flop_loss",
               "expected_macs", "band_macs", "band_ratio", "in_band", "argmax_macs", "argmax_ratio", "epoch_s"]
CHECKPOINT_FORMAT = "nasrepro-tas-search-v2"
FILES = RunFiles(log="search_log.csv", log_columns=LOG_COLUMNS, checkpoint="search_checkpoint.pt",
                 checkpoint_format=CHECKPOINT_FORMAT,
                 results=("search.json", "arch.yaml", "arch-*.yaml", "arch_last.yaml", "arch_best.yaml"))


def search_data(dataset: str, recipe: SearchRecipe, seed: int, device: torch.device,
                data_root: str | Path | None) -> RunData:
    """Both halves of `dataset`'s training split (parts `weights` and `architecture`) as augmented,
    shuffled loaders."""
    if dataset == "imagenet":
        raise NasReproError("TAS search on ImageNet is not supported: the official code has no ImageNet search "
                            "(tas.md §6 #4); retrain the released shapes (archs/ImageNet-ResNet*V1.yaml) instead")
    channels_last = sliced_net_memory_format(device) == torch.channels_last
    return run_data(dataset, recipe.weights, seed, device, data_root, Halves(recipe.tas.split_seed, channels_last),
                    evaluate=None)


def super_net(base_spec: dict[str, Any], recipe: SearchRecipe, num_classes: int,
              input_size: tuple[int, int, int]) -> TASResNet:
    """The super-network over a `resnet-cifar` base spec (its depth and block type)."""
    if base_spec.get("family") != "resnet-cifar":
        raise NasReproError(f"TAS searches CIFAR ResNets (family 'resnet-cifar'); the base spec is of family "
                            f"'{base_spec.get('family')}'")
    return TASResNet(base_spec["depth"], base_spec.get("block", "basic"), num_classes, input_size[0],
                     block_relu=recipe.tas.block_relu, image_size=input_size[1:])


class TASSearch:
    def __init__(self, net: TASResNet, recipe: SearchRecipe, data: RunData, *, out_dir: str | Path,
                 seed: int, device: torch.device | str = "cpu", record: dict[str, Any] | None = None) -> None:
        self.loop = EpochLoop(out_dir, FILES, seed=seed, epochs=recipe.weights.epochs, device=device)
        self.device = self.loop.device
        self.net = net.to(self.device, memory_format=sliced_net_memory_format(self.device))
        self.recipe, self.data, self.seed = recipe, data, seed
        self.out_dir = Path(out_dir)
        self.record = {**data.record, **(record or {})}
        self.w_opt = build_optimizer(self.net.weight_parameters(), recipe.weights)
        tas = recipe.tas
        self.a_opt = torch.optim.Adam(self.net.arch_parameters(), lr=tas.arch_lr, betas=tas.arch_betas,
                                      weight_decay=tas.arch_weight_decay)
        self.base_spec = {**derive_spec(self.net), "channels": None, "blocks": None}  # the unpruned network
        self.max_macs = count_macs(build_model(self.base_spec), data.input_size)
        self.target_macs = tas.target_ratio * self.max_macs
        self.tolerance_macs = tas.tolerance * self.max_macs

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.loop.history

    def band(self) -> tuple[float, float]:
        """The FLOP loss's zero band as ratios of the unpruned MACs: [target - tol, target] (the code)
        or [target - tol, target + tol] (`paper_tolerance`)."""
        tas = self.recipe.tas
        return tas.target_ratio - tas.tolerance, tas.target_ratio + (tas.tolerance if tas.paper_tolerance else 0.0)

    def in_band(self, ratio: float) -> bool:
        low, high = self.band()
        return low <= ratio <= high

    def best(self) -> dict[str, Any] | None:
        """The recipe's 'best' epoch (None for `select: last`): the best eval-pass accuracy, the first on
        ties (`best`, the official script's pick), restricted to |ratio - target| <= tolerance where any
        epoch is (`best-in-band`)."""
        tas = self.recipe.tas
        if tas.select == "last":
            return None
        rows = self.history
        if tas.select == "best-in-band":
            near = [row for row in rows if abs(row["band_ratio"] - tas.target_ratio) <= tas.tolerance]
            rows = near or rows
        top = max(row["eval_top1"] for row in rows)
        return next(row for row in rows if row["eval_top1"] == top)

    # -- what the epoch loop checkpoints ----------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "seed": self.seed, "base": self.base_spec}

    def state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict()}

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        require_keys(state, ("net", "w_opt", "a_opt"), path)
        load_weights(self.net, state["net"], path, "super-network")
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])

    # -- search ---------------------------------------------------------------------------------
    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        """One epoch of alternating steps (the loop has seeded it from (seed, epoch))."""
        weights_half, architecture_half = self.data.loaders["weights"], self.data.loaders["architecture"]
        for loader in (weights_half, architecture_half):
            loader.set_epoch(epoch)
        weights, tas = self.recipe.weights, self.recipe.tas
        tau = tau_at(epoch, weights.epochs, tas.tau_max, tas.tau_min, tas.tau_schedule)
        steps = min(len(weights_half), len(architecture_half))
        if steps == 0:
            raise NasReproError(f"search recipe batch_size {weights.batch_size} is larger than half the training "
                                "set: lower 'batch_size' or raise 'train_subset'")
        sums: dict[str, float] = {}
        start = time.perf_counter()
        for step, (train_batch, valid_batch) in enumerate(zip(weights_half, architecture_half)):
            lr = loop.set_lr(weights, self.w_opt, epoch, step, steps)
            out = search_step(self.net, self.w_opt, self.a_opt, train_batch, valid_batch, tau, self.target_macs,
                              self.tolerance_macs, tas.flop_weight, tas.paper_tolerance, flop_rule=tas.flop_rule)
            loop.check_finite(out, "TAS search diverged", epoch, step, lr, "lower the search recipe's 'lr' or 'arch_lr'")
            for key in ("loss", "train_top1", "arch_ce", "valid_top1", "flop_loss"):
                sums[key] = sums.get(key, 0.0) + out[key]
        # The official script validates every epoch; only a 'best' selection needs it here.
        evaluated = None if tas.select == "last" else eval_top1(self.net, architecture_half, tau)
        current, band = argmax_macs(self.net), band_macs(self.net, tas.flop_rule)
        return {
            "epoch": epoch + 1, "lr": lr, "tau": tau,
            "train_loss": sums["loss"] / steps, "train_top1": sums["train_top1"] / steps,
            "valid_ce": sums["arch_ce"] / steps, "valid_top1": sums["valid_top1"] / steps, "eval_top1": evaluated,
            "flop_loss": sums["flop_loss"] / steps,
            "expected_macs": float(expected_macs(self.net, tas.flop_rule).detach()),
            "band_macs": band, "band_ratio": band / self.max_macs, "in_band": self.in_band(band / self.max_macs),
            "argmax_macs": current, "argmax_ratio": current / self.max_macs,
            "epoch_s": time.perf_counter() - start, "spec": derive_spec(self.net),
        }

    def fit(self, resume: bool = False, stop_after: int | None = None) -> SearchResult | StageResult:
        if not self.loop.run(self, resume, stop_after):
            return StageResult("search", self.loop.stopped(), self.loop.stopped_after)
        return self._finish()

    def _finish(self) -> SearchResult:
        final, best = self.history[-1], self.best()
        save_spec(final["spec"], self.out_dir / "arch_last.yaml")
        if best is not None:
            save_spec(best["spec"], self.out_dir / "arch_best.yaml")
        tas = self.recipe.tas
        chosen = final if best is None else best
        target = ratio_target(tas.target_ratio)
        low, high = self.band()
        shape = SearchedShape(normalize_spec(chosen["spec"]), chosen["argmax_macs"], chosen["argmax_ratio"],
                              {"epoch": chosen["epoch"], "in_band": chosen["in_band"], "target_band": [low, high],
                               "band_macs": chosen["band_macs"], "flop_rule": tas.flop_rule})
        summary = ("epoch", "eval_top1", "band_macs", "band_ratio", "in_band", "argmax_macs", "argmax_ratio")
        details = {
            "target_macs": self.target_macs,
            "tolerance_macs": self.tolerance_macs,
            "flop_rule": tas.flop_rule,
            "pick": tas.select,
            "macs_reduction": 100.0 * (1.0 - chosen["argmax_ratio"]),
            "target_reduction": 100.0 * (1.0 - tas.target_ratio),
            "band_reduction": [100.0 * (1.0 - high), 100.0 * (1.0 - low)],
            "in_band": chosen["in_band"],
            "last": {k: final[k] for k in summary},
            "best": None if best is None else {**{k: best[k] for k in summary}, "spec": best["spec"]},
            "epochs": len(self.history),
        }
        result = SearchResult("tas", self.max_macs, {target: shape}, target, self.loop.elapsed_s, details,
                              {"recipe": self.recipe.to_dict(), "record": self.record, "run": self.loop.provenance()})
        result.write(self.out_dir)
        return result
