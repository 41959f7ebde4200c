"""The one interface of every search method, and what a search hands back.

A method comes in two parts. Its torch-free description, `MethodInfo` (in its `recipe` module:
manifests, the workflow and `nasrepro recipe` read it without torch), says which recipe keys it
adds, how a recipe is validated, which MACs targets a recipe asks for, its named stages, and the
work its searches do (`search_work`, in its `work` module: what `nasrepro cost` prices).
Its runnable part, a `SearchMethod` (in its `method` module), runs one stage of one search.

Every search ends the same way (`SearchResult.write`): one `arch-<target>.yaml` per target, an
`arch.yaml` (the shape the recipe selects for retraining) and `search.json`, whose common keys
(method, base_macs, selected, targets, wall_time_s) are all that anything downstream reads; a
method's own figures go under `details` (and per target under the target's `details`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_impl.errors import NasReproError
from nas_impl.methods.work_units import SearchWork

FINAL_SUMMARY = "search.json"


@dataclass(frozen=True)
class Stage:
    """A part of a search that a workflow can run as its own job."""

    name: str
    summary: str  # the file the stage writes last: its output in the workflow (the last stage: search.json)
    checkpoint: str | None = None  # its per-epoch resume state (a rerun resumes from it), if any
    ignores: tuple[str, ...] = ()  # recipe keys that state does not depend on (changing them keeps it)
    reused: tuple[str, ...] = ()  # results a resumed run reuses instead of recomputing (AutoSlim's supernet.pt)

    @property
    def state_files(self) -> tuple[str, ...]:
        """What a rerun keeps only if the same job wrote it (the workflow's resume guard)."""
        return (*([self.checkpoint] if self.checkpoint else []), *self.reused)


@dataclass(frozen=True)
class MethodInfo:
    """What the suite knows of a method without importing torch."""

    name: str
    settings: type  # the frozen dataclass of the keys the method adds to a search recipe
    recipe_from_dict: Callable[..., Any]  # (raw mapping, origin) -> validated search recipe
    targets: Callable[[Any], tuple[str, ...]]  # recipe -> the MACs targets the search records, e.g. ('0.5x',)
    stages: tuple[Stage, ...] = (Stage("search", FINAL_SUMMARY, checkpoint="search_checkpoint.pt"),)
    # Training keys its search steps do not apply, beyond those no search applies
    # (search_recipe.NOT_APPLIED_BY_SEARCHES): a search recipe setting one is refused.
    not_applied: tuple[str, ...] = ()
    # Keys of NOT_APPLIED_BY_SEARCHES its search steps do apply (AutoShrink's RNN proxy clips gradients).
    applies: tuple[str, ...] = ()
    # Its searches aim at a latency on the run's device (a lookup table's prediction): the workflow times
    # each derived net end to end and sets it beside the target and the prediction (latency_targets.csv).
    latency_target: bool = False
    # What its searches pass through their networks, stage by stage (its `work` module; `nasrepro cost`
    # prices it): None, and `nasrepro cost` says each stage's work is not projected.
    search_work: SearchWork | None = None

    def __post_init__(self) -> None:
        if not self.stages or self.stages[-1].summary != FINAL_SUMMARY:
            raise ValueError(f"method '{self.name}': the last stage must write {FINAL_SUMMARY}")
        for stage in self.stages[:-1]:
            if stage.summary != f"{stage.name}.json":  # the workflow's pattern for an earlier stage's output
                raise ValueError(f"method '{self.name}': stage '{stage.name}' must write {stage.name}.json")

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise NasReproError(f"--stage '{name}': method '{self.name}' has stages {', '.join(self.stage_names)}")

    def stages_from(self, name: str | None) -> tuple[Stage, ...]:
        """The stages a run executes: all, in order, or the one named."""
        return self.stages if name is None else (self.stage(name),)


@dataclass(frozen=True)
class SearchJob:
    """One search's inputs, as `nasrepro search` (or a test) gives them."""

    base_spec: dict[str, Any]  # the network searched over, normalised
    recipe: Any  # the method's validated search recipe
    dataset: str
    out_dir: Path
    seed: int
    device: Any  # torch.device
    data_root: str | Path | None = None
    resume: bool = False
    stop_after: int | None = None  # end after this many epochs of an epoch-loop stage (a test of resume)
    record: dict[str, Any] = field(default_factory=dict)  # provenance added to the summaries


@dataclass(frozen=True)
class SearchedShape:
    """The shape a search found for one MACs target."""

    arch: dict[str, Any]  # a family spec, retrained by the shared chain
    macs: float  # at the search dataset's input size
    ratio_of_base: float  # macs / the base network's MACs
    details: dict[str, Any] = field(default_factory=dict)  # the method's own figures (epoch, step, held-out top-1)

    def to_dict(self, target: str) -> dict[str, Any]:
        return {"file": arch_file(target), "macs": self.macs, "ratio_of_base": self.ratio_of_base,
                "arch": self.arch, "details": self.details}


@dataclass(frozen=True)
class SearchResult:
    """What a finished search found: one shape per target, and which one arch.yaml holds."""

    method: str
    base_macs: float
    targets: dict[str, SearchedShape]
    selected: str
    wall_time_s: float
    details: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # recipe, record, run

    def __post_init__(self) -> None:
        if self.selected not in self.targets:
            raise ValueError(f"selected target '{self.selected}' is not among {list(self.targets)}")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "base_macs": self.base_macs, "selected": self.selected,
                "targets": {t: shape.to_dict(t) for t, shape in self.targets.items()},
                "wall_time_s": self.wall_time_s, "details": self.details, **self.provenance}

    def write(self, out_dir: str | Path) -> dict[str, Any]:
        """arch-<target>.yaml per target, arch.yaml, then search.json (last: it marks the search done)."""
        from nas_impl.io import write_json_atomic
        from nas_impl.models import save_spec

        out_dir = Path(out_dir)
        for target, shape in self.targets.items():
            save_spec(shape.arch, out_dir / arch_file(target))
        save_spec(self.targets[self.selected].arch, out_dir / "arch.yaml")
        summary = self.to_dict()
        write_json_atomic(out_dir / FINAL_SUMMARY, summary)
        return summary

    def brief(self) -> dict[str, Any]:
        """What `nasrepro search` prints."""
        scalars = {k: v for k, v in self.details.items() if isinstance(v, (int, float, str, bool))}
        return {"method": self.method, "base_macs": self.base_macs, "selected": self.selected,
                "targets": {t: {"macs": s.macs, "ratio_of_base": s.ratio_of_base} for t, s in self.targets.items()},
                "wall_time_s": self.wall_time_s, **scalars}


@dataclass(frozen=True)
class StageResult:
    """An earlier stage's outcome, or any stage stopped early on request (`stop_after`)."""

    stage: str
    summary: dict[str, Any]
    stopped_after_epoch: int | None = None

    def brief(self) -> dict[str, Any]:
        kept = {k: v for k, v in self.summary.items() if k not in ("recipe", "record", "run")}
        return {"stage": self.stage, **kept}


def arch_file(target: str) -> str:
    return f"arch-{target}.yaml"


def ratio_target(ratio: float) -> str:
    """A MACs target relative to the base network, as targets are named: 0.55 -> '0.55x'."""
    return f"{ratio:g}x"


class SearchMethod(abc.ABC):
    """The runnable part of a method: `run_stage` runs one of `info.stages` of one search and
    returns its `SearchResult` (the last stage, after `SearchResult.write`) or a `StageResult`."""

    info: MethodInfo

    @abc.abstractmethod
    def run_stage(self, stage: Stage, job: SearchJob) -> SearchResult | StageResult:
        ...

    def run(self, job: SearchJob, stage: str | None = None) -> SearchResult | StageResult:
        """The named stage, or every stage in order (ending early when one stops early)."""
        outcome: SearchResult | StageResult | None = None
        for part in self.info.stages_from(stage):
            outcome = self.run_stage(part, job)
            if isinstance(outcome, StageResult) and outcome.stopped_after_epoch is not None:
                break
        assert outcome is not None
        return outcome
