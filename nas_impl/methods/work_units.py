"""The units a method's search work is counted in, torch-free (`nasrepro cost`, nas_impl.cost).

A method describes its own search work (`SearchWork`, the `search_work` of its `MethodInfo`, in
its `work` module): for a recipe and the base network, each stage's `StageWork`, i.e. the images
(tokens) it passes through a `Network`, as `Part`s that each cost some plain training steps per
image. The dataset facts a count needs (`DataSize`) are here too: nas_impl.data.registry imports
torch (tests/unit/test_cost.py checks these against it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nas_impl.errors import NasReproError

EVAL_COST = 1 / 3  # an evaluation image (token): a forward pass, about a third of a training step

PTB_TRAIN_LINES = 42_068  # lines of ptb.train.txt (Mikolov's file)


@dataclass(frozen=True)
class DataSize:
    unit: str  # images or tokens
    input: str  # "3x32x32", or "tokens"
    classes: int
    train: int
    test: int
    valid: int = 0  # a language model's validation split (evaluated after every epoch)


# Unit, input, classes (vocabulary), training and test sizes (PTB: valid too).
DATA_SIZES: dict[str, DataSize] = {
    "fashion-mnist": DataSize("images", "1x28x28", 10, 60_000, 10_000),
    "cifar10": DataSize("images", "3x32x32", 10, 50_000, 10_000),
    "cifar10-jpg": DataSize("images", "3x32x32", 10, 50_000, 10_000),
    "cifar100": DataSize("images", "3x32x32", 100, 50_000, 10_000),
    "imagenet": DataSize("images", "3x224x224", 1000, 1_281_167, 50_000),
    "ptb": DataSize("tokens", "tokens", 10_000, 929_589, 82_430, valid=73_760),
}

# Keys of a spec that do not change a step's cost (much): the head and stem follow the dataset.
IGNORED_SPEC_KEYS = frozenset({"num_classes", "vocab_size", "in_channels"})


def data_size(dataset: str) -> DataSize:
    if dataset not in DATA_SIZES:
        raise NasReproError(f"dataset '{dataset}': its size is not known to `nasrepro cost` "
                            f"(known: {', '.join(DATA_SIZES)}); add it to DATA_SIZES in {__name__}")
    return DATA_SIZES[dataset]


def train_subset(recipe: Any, size: DataSize) -> int:
    """The training images (tokens) an epoch of `recipe` (a training recipe) passes."""
    return min(recipe.train_subset, size.train) if recipe.train_subset else size.train


def canonical(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec without the keys that follow the dataset (head, stem channels, vocabulary)."""
    return {k: v for k, v in spec.items() if k not in IGNORED_SPEC_KEYS}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=list) == json.dumps(b, sort_keys=True, default=list)


@dataclass(frozen=True)
class Network:
    """A network at one dataset's input size: what a rate is measured for."""

    name: str  # the arch file's stem, or what the search trains
    spec_json: str  # the spec as written (canonical JSON: hashable)
    dataset: str

    @classmethod
    def of(cls, name: str, spec: Mapping[str, Any], dataset: str) -> Network:
        return cls(name, json.dumps(dict(spec), sort_keys=True, default=list), dataset)

    @property
    def spec(self) -> dict[str, Any]:
        return json.loads(self.spec_json)

    @property
    def input(self) -> str:
        return data_size(self.dataset).input

    @property
    def unit(self) -> str:
        return data_size(self.dataset).unit

    @property
    def key(self) -> str:
        """What a rate is cached under: family, a digest of the canonical spec, and the input."""
        spec = canonical(self.spec)
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()[:12]
        return f"{spec.get('family', '?')}:{digest}@{self.input}"

    def matches(self, run_spec: Mapping[str, Any], run_input: str) -> bool:
        """A run's recorded (normalised) spec is this network: same input, and every key of this spec
        (those that follow the dataset aside) has the run's value."""
        if run_input != self.input:
            return False
        mine = canonical(self.spec)
        return all(k in run_spec and _same(run_spec[k], v) for k, v in mine.items())


@dataclass(frozen=True)
class Part:
    """Work through one network: `work` images (tokens), each costing `cost` plain training steps."""

    network: Network
    work: float
    cost: float = 1.0

    @property
    def step_equivalents(self) -> float:
        return self.work * self.cost


@dataclass(frozen=True)
class StageWork:
    """One stage of one search: its images (tokens) and what they cost, with the row's basis."""

    stage: str
    work: float | None  # images (tokens) through the network; None: not projected
    parts: tuple[Part, ...]
    basis: str
    network: Network


@dataclass(frozen=True)
class SearchWork:
    """What a method says of its searches' cost (`MethodInfo.search_work`)."""

    # (search recipe, base network) -> stage name -> its work; a stage left out is not projected
    # (only a measured run of the same recipe prices it).
    stages: Callable[[Any, Network], dict[str, StageWork]]
    # Where the retrained shape stands against the base network (a searched experiment is costed as its base).
    shape_bound: str = "approximate"
    # What the paper says of a search's cost when published.csv has no `search_gpu_h` row ('' : nothing).
    cost_note: str = ""


def thousands(x: float) -> str:
    """A count as a basis writes it: 25000.4 -> '25,000'."""
    return f"{int(round(x)):,}"


def epochs_text(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"
