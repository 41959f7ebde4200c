"""A whole AutoSlim search in two resumable stages.

`supernet`: train the slimmable super-network (the default-width network times
`supernet_width`) with the sandwich rule; every epoch is logged to `supernet_log.csv` and
checkpointed (`search_checkpoint.pt`), so an interrupted run resumes bit-exactly; the result
is `supernet.pt` and `supernet.json` (largest and smallest configurations' held-out top-1
after BN recalibration).

`slim`: greedy slimming of `supernet.pt` on the held-out images down to every target; writes
`slim_log.csv`, `arch-<target>.yaml` per target, `arch.yaml` (the first target) and
`search.json` (every target's channel list, MACs and step).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from nas_impl.errors import NasReproError
from nas_impl.io import write_csv_rows_atomic, write_json_atomic
from nas_impl.methods.autoslim.data import SlimData
from nas_impl.methods.memory_format import sliced_net_memory_format as memory_format
from nas_impl.methods.autoslim.greedy import greedy_slim
from nas_impl.methods.autoslim.recipe import SLIMMING_ONLY, SearchRecipe, parse_target
from nas_impl.methods.interface import SearchedShape, SearchResult, StageResult
from nas_impl.methods.autoslim.space import ChannelSpace, meta_model
from nas_impl.methods.autoslim.supernet import SlimmableNet, calibrated_accuracy, sandwich_configs, sandwich_step
from nas_impl.metrics import count_macs
from nas_impl.seeds import derive_seed
from nas_impl.training.checkpoint import check_resumable, load_checkpoint, load_weights, require_keys, save_checkpoint
from nas_impl.training.epoch_loop import EpochLoop, RunFiles
from nas_impl.training.optim import build_optimizer
from nas_impl.training.provenance import run_provenance
from nas_impl.training.run_dir import prepare_run_dir, remove_files
from nas_impl.training.seeding import seed_everything

SUPERNET_COLUMNS = ["epoch", "lr", "loss_largest", "top1_largest", "loss_smallest", "top1_smallest", "epoch_s"]
SLIM_COLUMNS = ["step", "group", "entries", "width", "macs", "held_out_top1", "candidates", "step_s"]
CHECKPOINT_FORMAT = "nasrepro-autoslim-search-v1"
SUPERNET_FORMAT = "nasrepro-autoslim-supernet-v1"
# What each stage leaves when it finishes (removed when it starts; a new super-network also
# invalidates the slimming results derived from the old one), and what a fresh start removes too.
SLIM_RESULTS = ("search.json", "arch.yaml", "arch-*.yaml", "slim_log.csv")
SUPERNET_FILES = RunFiles(log="supernet_log.csv", log_columns=SUPERNET_COLUMNS, checkpoint="search_checkpoint.pt",
                          checkpoint_format=CHECKPOINT_FORMAT, results=("supernet.pt", "supernet.json", *SLIM_RESULTS))


class AutoSlimSearch:
    def __init__(self, base_spec: dict[str, Any], recipe: SearchRecipe, data: SlimData, *, out_dir: str | Path,
                 seed: int, device: torch.device | str = "cpu", record: dict[str, Any] | None = None) -> None:
        self.loop = EpochLoop(out_dir, SUPERNET_FILES, seed=seed, epochs=recipe.weights.epochs, device=device,
                              resume_view=supernet_view)
        self.device = self.loop.device
        self.recipe, self.data, self.seed = recipe, data, seed
        self.out_dir = Path(out_dir)
        self.record = {**data.record, **(record or {})}
        self.base_spec = base_spec
        settings = recipe.autoslim
        self.space = ChannelSpace.for_search(base_spec, settings, data.input_size)
        self.base_macs = count_macs(meta_model(base_spec), data.input_size)
        seed_everything(seed)  # the super-network's initialisation depends on the seed only
        self.model = SlimmableNet(self.space).to(self.device, memory_format=memory_format(self.device))
        self.optimizer = build_optimizer(self.model, recipe.weights)
        self.elapsed_s = 0.0  # of the super-network's training, read back from supernet.pt by the slim stage

    @property
    def supernet_path(self) -> Path:
        return self.out_dir / "supernet.pt"

    def target_macs(self) -> list[tuple[str, float]]:
        out = []
        for target in self.recipe.autoslim.targets:
            unit, value = parse_target(target)
            out.append((target, value * {"x": self.base_macs, "M": 1e6, "G": 1e9}[unit]))
        return out

    def identity(self) -> dict[str, Any]:
        """What the super-network depends on: the recipe without the slimming-only keys, so new
        targets or a new held-out sample reuse a trained super-network."""
        return {"recipe": supernet_part(self.recipe.to_dict()), "seed": self.seed, "base": self.base_spec}

    def state(self) -> dict[str, Any]:
        return {"net": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict[str, Any], path: Path) -> None:
        require_keys(state, ("net", "optimizer"), path)
        load_weights(self.model, state["net"], path, "super-network")
        self.optimizer.load_state_dict(state["optimizer"])

    def _check(self, state: dict[str, Any], path: Path) -> None:
        check_resumable(supernet_view(state), self.identity(), path)

    def _to_device(self, batch: tuple[torch.Tensor, torch.Tensor],
                   backward: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch  # a no-op for the in-memory loaders, which batch on the device already
        fmt = memory_format(self.device, backward)
        return x.to(self.device, non_blocking=True, memory_format=fmt), y.to(self.device)

    def _for_inference(self) -> None:
        """From here on only forward passes (BN recalibration, held-out accuracy)."""
        self.model.to(memory_format=memory_format(self.device, backward=False))

    # -- stage 1: the super-network ---------------------------------------------------------------
    def train_supernet(self, resume: bool = False, stop_after: int | None = None) -> StageResult:
        if not self.loop.run(self, resume, stop_after):
            return StageResult("supernet", self.loop.stopped(), self.loop.stopped_after)
        self.elapsed_s = self.loop.elapsed_s
        return StageResult("supernet", self._finish_supernet())

    def run_epoch(self, epoch: int, loop: EpochLoop) -> dict[str, Any]:
        """One epoch of sandwich-rule steps (the loop has seeded it from (seed, epoch))."""
        generator = torch.Generator().manual_seed(derive_seed("autoslim-sandwich", self.seed, epoch))
        loader = self.data.train_loader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        weights, settings = self.recipe.weights, self.recipe.autoslim
        steps = len(loader)
        sums: dict[str, float] = {}
        start = time.perf_counter()
        self.model.train()
        for step, batch in enumerate(loader):
            batch = self._to_device(batch)
            lr = loop.set_lr(weights, self.optimizer, epoch, step, steps)
            configs = sandwich_configs(self.space, settings.num_sample_training, generator)
            out = sandwich_step(self.model, self.optimizer, batch, configs, settings.inplace_distill,
                                weights.label_smoothing)
            loop.check_finite(out, "AutoSlim super-network training diverged", epoch, step, lr,
                              "lower the search recipe's 'lr'")
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value
        return {"epoch": epoch + 1, "lr": lr, **{k: v / steps for k, v in sums.items()},
                "epoch_s": time.perf_counter() - start}

    def _finish_supernet(self) -> dict[str, Any]:
        supernet = {**self.identity(), "spec": self.space.spec, "net": self.model.net.state_dict(),
                    "input_size": list(self.data.input_size), "epochs": len(self.loop.history),
                    "wall_time_s": self.elapsed_s}
        save_checkpoint(supernet, self.supernet_path, fmt=SUPERNET_FORMAT)
        self._for_inference()
        calibration = [self._to_device(batch, backward=False)[0]
                       for batch in _take(self.data.train_loader, self.recipe.autoslim.calibration_batches)]
        evaluated = {name: calibrated_accuracy(self.model, config, calibration, self.data.held_out)
                     for name, config in (("largest", self.space.largest()), ("smallest", self.space.smallest()))}
        summary = {"stage": "supernet", "supernet_spec": self.space.spec, "base_macs": self.base_macs,
                   "held_out_recalibrated": evaluated, "epochs": len(self.loop.history), "wall_time_s": self.elapsed_s,
                   "recipe": self.recipe.to_dict(), "record": self.record, "run": run_provenance(self.device, self.seed)}
        write_json_atomic(self.out_dir / "supernet.json", summary)
        return summary

    # -- stage 2: greedy slimming -----------------------------------------------------------------
    def load_supernet(self) -> None:
        if not self.supernet_path.exists():
            raise NasReproError(f"{self.supernet_path} not found: run the 'supernet' stage first "
                                "(nasrepro search --method autoslim --stage supernet ...)")
        state = load_checkpoint(self.supernet_path, map_location=self.device, fmt=SUPERNET_FORMAT)
        self._check(state, self.supernet_path)
        require_keys(state, ("net", "wall_time_s"), self.supernet_path)
        load_weights(self.model.net, state["net"], self.supernet_path, "super-network")
        self.elapsed_s = state["wall_time_s"]
        self._for_inference()

    def slim(self) -> SearchResult:
        prepare_run_dir(self.out_dir)
        self.load_supernet()
        remove_files(self.out_dir, SLIM_RESULTS)
        rows: list[dict[str, Any]] = []

        def log(row: dict[str, Any]) -> None:
            rows.append(row)
            if len(rows) % 10 == 0:
                write_csv_rows_atomic(self.out_dir / "slim_log.csv", rows, SLIM_COLUMNS)

        start = time.perf_counter()
        result = greedy_slim(self.model, self.data.held_out, self.target_macs(), on_step=log)
        slim_s = time.perf_counter() - start
        write_csv_rows_atomic(self.out_dir / "slim_log.csv", rows, SLIM_COLUMNS)
        shapes = {found.target: SearchedShape(self.space.spec_of(found.config), found.macs, found.macs / self.base_macs,
                                              {"target_macs": found.target_macs, "previous_macs": found.previous_macs,
                                               "step": found.step, "held_out_top1": found.top1})
                  for found in result.found}
        details = {"supernet_macs": self.space.macs(self.space.largest()), "steps": len(rows), "slim_s": slim_s}
        found = SearchResult("autoslim", self.base_macs, shapes, self.recipe.autoslim.targets[0], self.elapsed_s + slim_s,
                             details, {"recipe": self.recipe.to_dict(), "record": self.record,
                                       "run": run_provenance(self.device, self.seed)})
        found.write(self.out_dir)
        return found


def supernet_view(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's state as the super-network's identity sees it: without the slimming-only keys."""
    return {**state, "recipe": supernet_part(state.get("recipe", {}))}


def supernet_part(recipe: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in recipe.items() if k not in SLIMMING_ONLY}


def _take(loader: Any, n: int) -> list[Any]:
    out = []
    for batch in loader:
        if len(out) == n:
            break
        out.append(batch)
    return out
