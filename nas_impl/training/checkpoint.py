"""Checkpoints: written atomically every epoch; enough to resume exactly or to evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_impl.errors import NasReproError
from nas_impl.io import write_atomic

FORMAT = "nasrepro-checkpoint-v1"


def save_checkpoint(state: dict[str, Any], path: str | Path, fmt: str = FORMAT) -> None:
    write_atomic(path, lambda tmp: torch.save({"format": fmt, **state}, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", fmt: str = FORMAT) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise NasReproError(f"checkpoint {path} does not exist: train the model first (nasrepro train ... --out {path.parent})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises several types for truncated / foreign files
        raise NasReproError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); delete it and retrain") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise NasReproError(f"{path} is not a nas-repro checkpoint of format {fmt}; delete it and rerun")
    return state


def check_resumable(state: dict[str, Any], identity: dict[str, Any], path: str | Path) -> None:
    """A run resumes only from a checkpoint of the same identity (recipe, seed, architecture)."""
    mismatched = [k for k, v in identity.items() if state.get(k) != v]
    if mismatched:
        raise NasReproError(
            f"cannot resume from {path}: its {', '.join(mismatched)} differ from this run's; "
            "delete the checkpoint or rerun without --resume"
        )


def model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the network from the spec stored in the checkpoint and load its weights."""
    from nas_impl.models import build_model

    state = load_checkpoint(path, map_location=device)
    model = build_model(state["spec"])
    model.load_state_dict(state["model"])
    return model.to(device)
