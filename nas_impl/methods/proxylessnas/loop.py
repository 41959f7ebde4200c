"""A whole ProxylessNAS search: the cost table, the warm-up, the joint search, the derived net.

Data: a class-balanced held-out part of the training set (`valid_size` images, `split_seed`;
the official 50,000 ImageNet images with seed 0) feeds the architecture updates, without
augmentation and reshuffled every pass; the rest trains the weights with the recipe's
augmentation. The held-out order restarts every epoch (the official iterator runs on across
epochs), so that a resumed search is bit-exact.

Epochs: `supernet_warmup_epochs` of weight steps on sampled paths at the warm-up's own cosine,
then the recipe's `epochs` of joint search at the recipe's schedule, with architecture updates
(`arch_every` / `rl_updates_per_epoch`) from joint epoch `arch_skip_epochs` + 1 on. Every epoch
is logged to `search_log.csv` and checkpointed. The outputs are `arch.yaml` (argmax per edge)
and `search.json`, with the derived net's MACs and its cost under the table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.io import write_json_atomic
from nas_impl.methods.interface import SearchedShape, SearchResult, StageResult
from nas_impl.methods.proxylessnas.mixed_edge import MovingAverageBaseline
from nas_impl.methods.proxylessnas.recipe import ProxylessSettings, SearchRecipe
from nas_impl.methods.proxylessnas.search import (Costs, CostTable, HardwareLoss, arch_schedule, gradient_arch_step,
                                                  held_out_top1, reinforce_schedule, reinforce_step, warmup_recipe,
                                                  weight_step)
from nas_impl.methods.proxylessnas.search_net import ProxylessSuperNet
from nas_impl.metrics import count_macs
from nas_impl.metrics.latency_lut import LatencyTable, measure_latency_table
from nas_impl.models import build_model, normalize_spec
from nas_impl.run_data import Holdout, RunData, run_data
from nas_impl.training.checkpoint import load_weights, require_keys
from nas_impl.training.epoch_loop import EpochLoop, RunFiles
from nas_impl.training.optim import build_optimizer

LOG_COLUMNS = ["epoch", "phase", "lr", "train_loss", "train_top1", "arch_updates", "arch_loss", "expected",
               "entropy", "valid_top1", "argmax_cost", "argmax_macs", "argmax_ratio", "epoch_s"]
CHECKPOINT_FORMAT = "nasrepro-proxylessnas-search-v1"
FILES = RunFiles(log="search_log.csv", log_columns=LOG_COLUMNS, checkpoint="search_checkpoint.pt",
                 checkpoint_format=CHECKPOINT_FORMAT, results=("search.json", "arch.yaml", "arch-*.yaml"))
LATENCY_TABLE = "latency_table.yaml"
LATENCY_SUMMARY = "latency.json"


def arch_batch_size(recipe: SearchRecipe) -> int:
    """The held-out batch of an update: gradient = the weight batch, REINFORCE = the evaluation
    batch (the official test batch), unless `arch_batch_size` says otherwise."""
    settings = recipe.proxyless
    if settings.arch_batch_size is not None:
        return settings.arch_batch_size
    return recipe.weights.batch_size if settings.arch_algo == "gradient" else recipe.weights.eval_batch_size


def search_data(dataset: str, recipe: SearchRecipe, seed: int, device: torch.device,
                data_root: str | Path | None) -> RunData:
    """Loaders `train` (the weights' part, augmented) and `scored` (the held-out part, shuffled)."""
    settings = recipe.proxyless
    plan = Holdout(0.0, settings.split_seed, settings.valid_size, arch_batch_size(recipe), record_key="search_split",
                   train_part="weights", keys=("valid_size", "valid_size"), size=settings.valid_size,
                   scored_shuffled=True)
    data = run_data(dataset, recipe.weights, seed, device, data_root, plan, evaluate=None)
    for part, key, size, images in (("train", "batch_size", recipe.weights.batch_size, "weight-training"),
                                    ("scored", "arch_batch_size", arch_batch_size(recipe), "held-out")):
        if len(data.loaders[part]) == 0:
            raise NasReproError(f"search recipe key '{key}' = {size} is larger than the {images} images: lower it, "
                                "or change 'valid_size' or 'train_subset'")
    return data


def super_net(base_spec: dict[str, Any], settings: ProxylessSettings, image_size: int) -> ProxylessSuperNet:
    return ProxylessSuperNet(base_spec, kernels=settings.kernels, expands=settings.expands, zero=settings.zero,
                             fixed_blocks=settings.fixed_blocks, search_blocks=settings.search_blocks,
                             arch_init_std=settings.arch_init_std,
                             image_size=image_size)


# -- stage 1: the cost table ---------------------------------------------------------------------

def lut_batch(device: torch.device) -> int:
    """Batch 1 on CPU and mobile, 8 on a GPU: the paper's Table 3 measuring convention."""
    return 8 if device.type == "cuda" else 1


def build_latency_table(net: ProxylessSuperNet, settings: ProxylessSettings, device: torch.device,
                        out_dir: Path, threads: int | None = None) -> dict[str, Any]:
    """latency_table.yaml for this space: measured here, or the user's file checked for coverage."""
    start = time.perf_counter()
    items = net.cost_items(lut_batch(device))
    keys = list(dict.fromkeys(item.key for item in items))
    if settings.hardware != "latency":
        summary = {"hardware": settings.hardware, "table": None}
    elif settings.latency_table:
        table = LatencyTable.load(settings.latency_table)
        missing = [key for key in keys if key not in table]
        if missing:
            raise NasReproError(
                f"latency LUT {settings.latency_table} lacks {len(missing)} of the {len(keys)} blocks of this search "
                f"space, e.g. '{missing[0]}': it was built for another space (the official mobile_trim.yaml covers "
                "only the default width-1.0 space at 224 px); remove 'latency_table' to measure one here")
        table.save(out_dir / LATENCY_TABLE)
        summary = {"hardware": "latency", "table": LATENCY_TABLE, "source": table.source, "device": table.device,
                   "entries": len(keys)}
    else:
        table = measure_latency_table(items, device, settings.latency_repeats, settings.latency_warmup,
                                      threads=threads)
        table.save(out_dir / LATENCY_TABLE)
        summary = {"hardware": "latency", "table": LATENCY_TABLE, "source": table.source, "device": table.device,
                   "threads": table.threads, "batch": lut_batch(device), "entries": len(table)}
    summary["wall_time_s"] = time.perf_counter() - start
    write_json_atomic(out_dir / LATENCY_SUMMARY, summary)
    return summary


def search_costs(net: ProxylessSuperNet, settings: ProxylessSettings, out_dir: Path) -> Costs | None:
    """What the hardware term reads: the stage's LUT (ms), the candidates' MACs (MMACs), or None."""
    if settings.hardware == "none":
        return None
    if settings.hardware == "latency":
        path = out_dir / LATENCY_TABLE
        if not path.exists():
            raise NasReproError(f"{path} is missing: run the search's 'latency' stage first "
                                "(nasrepro search --stage latency, or the workflow's search rules)")
        table: Any = LatencyTable.load(path)
        unit = "ms"
    else:
        distinct = {item.key: item for item in net.cost_items()}
        table = CostTable({key: count_macs(item.make(), item.input_shape[1:]) / 1e6 for key, item in distinct.items()})
        unit = "MMACs"
    return Costs(table, net.fixed_cost_keys(), net.edge_cost_keys(), unit)


# -- stage 2: the search -------------------------------------------------------------------------

class ProxylessSearch:
    def __init__(self, net: ProxylessSuperNet, recipe: SearchRecipe, data: RunData, *, out_dir: str | Path,
                 seed: int, device: torch.device | str = "cpu", record: dict[str, Any] | None = None) -> None:
        self.settings = settings = recipe.proxyless
        self.loop = EpochLoop(out_dir, FILES, seed=seed, epochs=settings.supernet_warmup_epochs + recipe.weights.epochs,
                              device=device)
        self.device = self.loop.device
        self.net = net.to(self.device, memory_format=torch.channels_last)
        self.recipe, self.data, self.seed = recipe, data, seed
        self.out_dir = Path(out_dir)
        self.record = {**data.record, **(record or {})}
        self.w_opt = build_optimizer(list(self.net.weight_parameters()), recipe.weights)
        self.a_opt = torch.optim.Adam(self.net.arch_parameters(), lr=settings.arch_lr, betas=settings.arch_betas,
                                      eps=settings.arch_eps, weight_decay=settings.arch_weight_decay)
        self.baseline = MovingAverageBaseline(settings.rl_baseline_decay)
        self.costs = search_costs(self.net, settings, self.out_dir)
        self.space_mean = None if self.costs is None else float(self.costs.expected(self.net, "uniform"))
        self.ref = settings.ref_value if settings.ref_value is not None else self.space_mean
        self.hardware_loss = None if self.costs is None else HardwareLoss.of(settings, self.ref)
        self.warmup = (warmup_recipe(recipe.weights, settings.supernet_warmup_epochs, settings.supernet_warmup_lr)
                       if settings.supernet_warmup_epochs else None)
        self.input_size = data.input_size
        self.base_macs = count_macs(build_model(self.net.base_spec()), self.input_size)  # the backbone as written

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.loop.history

    # -- what the epoch loop checkpoints ----------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "seed": self.seed, "space": self.net.edge_cost_keys(),
                "costs": None if self.costs is None else self.costs.fingerprint()}

    def state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
                "baseline": self.baseline.state_dict()}

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        require_keys(state, ("net", "w_opt", "a_opt", "baseline"), path)
        load_weights(self.net, state["net"], path, "super-network")
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.baseline.load_state_dict(state["baseline"])

    # -- epochs ---------------------------------------------------------------------------------
    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        settings, weights = self.settings, self.recipe.weights
        train, held_out = self.data.loaders["train"], self.data.loaders["scored"]
        train.set_epoch(epoch)
        held_out.set_epoch(epoch)
        self._arch_batches = iter(held_out)
        steps = len(train)
        warm = epoch < settings.supernet_warmup_epochs
        joint = epoch - settings.supernet_warmup_epochs
        schedule: dict[int, int] = {}
        if not warm and joint >= settings.arch_skip_epochs:
            schedule = (arch_schedule(steps, settings.arch_every, settings.arch_steps)
                        if settings.arch_algo == "gradient" else reinforce_schedule(steps, settings.rl_updates_per_epoch))
        sums: dict[str, float] = {"loss": 0.0, "top1": 0.0, "arch_loss": 0.0}
        updates = 0
        start = time.perf_counter()
        for step, batch in enumerate(loop.progress(train, steps, epoch)):
            lr = (loop.set_lr(self.warmup, self.w_opt, epoch, step, steps) if warm
                  else loop.set_lr(weights, self.w_opt, joint, step, steps))
            out = weight_step(self.net, self.w_opt, batch, weights.label_smoothing)
            loop.check_finite(out, "ProxylessNAS weight step diverged", epoch, step, lr, "lower the search recipe's 'lr'")
            sums["loss"] += out["loss"]
            sums["top1"] += out["top1"]
            for _ in range(schedule.get(step, 0)):
                arch = self._arch_step(self._next_held_out())
                loop.check_finite({"arch_loss": arch["arch_loss"]}, "ProxylessNAS architecture step diverged", epoch,
                                  step, lr, "lower the search recipe's 'arch_lr' (mul#log needs the costs and "
                                  "ref_value on the same side of 1)")
                sums["arch_loss"] += arch["arch_loss"]
                updates += 1
        indices = self.net.argmax_indices()
        spec = self.net.derive_spec(indices)
        macs = count_macs(build_model(spec), self.input_size)
        expected = None if self.costs is None else float(self.costs.expected(self.net, "p").detach())
        return {
            "epoch": epoch + 1, "phase": "warmup" if warm else "search", "lr": lr,
            "train_loss": sums["loss"] / steps, "train_top1": sums["top1"] / steps,
            "arch_updates": updates, "arch_loss": sums["arch_loss"] / updates if updates else None,
            "expected": expected, "entropy": self.net.entropy(),
            "valid_top1": held_out_top1(self.net, held_out, indices),
            "argmax_cost": None if self.costs is None else self.costs.of(self.net, indices),
            "argmax_macs": macs, "argmax_ratio": macs / self.base_macs,
            "epoch_s": time.perf_counter() - start, "spec": spec,
        }

    def _next_held_out(self):
        """The next held-out batch, starting a new pass when one ends (the official `valid_next_batch`)."""
        try:
            return next(self._arch_batches)
        except StopIteration:
            self._arch_batches = iter(self.data.loaders["scored"])
            return next(self._arch_batches)

    def _arch_step(self, batch) -> dict[str, float]:
        settings = self.settings
        if settings.arch_algo == "reinforce":
            return reinforce_step(self.net, self.a_opt, batch, settings.rl_samples, self.baseline, self.costs,
                                  self.ref, settings.rl_tradeoff)
        return gradient_arch_step(self.net, self.a_opt, batch, settings.grad_mode, self.costs, self.hardware_loss)

    def fit(self, resume: bool = False, stop_after: int | None = None) -> SearchResult | StageResult:
        if not self.loop.run(self, resume, stop_after):
            return StageResult("search", self.loop.stopped(), self.loop.stopped_after)
        return self._finish()

    def _finish(self) -> SearchResult:
        final, settings = self.history[-1], self.settings
        details = {
            "arch_algo": settings.arch_algo,
            "grad_mode": settings.grad_mode if settings.arch_algo == "gradient" else None,
            "hardware": settings.hardware,
            "cost_unit": None if self.costs is None else self.costs.unit,
            "ref_value": self.ref,
            "space_mean_cost": self.space_mean,
            "derived_cost": final["argmax_cost"],
            "valid_top1": final["valid_top1"],
            "entropy": final["entropy"],
            "epochs": len(self.history),
            "warmup_epochs": settings.supernet_warmup_epochs,
            "probabilities": [[round(p, 6) for p in edge.probs.detach().cpu().tolist()] for edge in self.net.edges()],
        }
        shape = SearchedShape(normalize_spec(final["spec"]), final["argmax_macs"], final["argmax_ratio"],
                              {"epoch": final["epoch"], "cost": final["argmax_cost"], "valid_top1": final["valid_top1"]})
        result = SearchResult("proxylessnas", self.base_macs, {settings.target: shape}, settings.target,
                              self.loop.elapsed_s, details,
                              {"recipe": self.recipe.to_dict(), "record": self.record, "run": self.loop.provenance()})
        result.write(self.out_dir)
        return result
