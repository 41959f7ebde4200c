"""Checkpoints: written atomically every epoch; enough to resume exactly or to evaluate.

A checkpoint holds only tensors, plain containers, numbers and strings, and is read with
`torch.load(weights_only=True)`: a file whose pickle names any other Python object (the way a
malicious checkpoint runs code while it is unpickled) is refused before that object is built.
"""

from __future__ import annotations

import errno
import pickle
import shutil
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas_impl.errors import NasReproError
from nas_impl.io import write_atomic

FORMAT = "nasrepro-checkpoint-v1"


def save_checkpoint(state: dict[str, Any], path: str | Path, fmt: str = FORMAT) -> None:
    """Write atomically; the intra-op thread count is recorded (a resume warns when it changed)."""
    state = {"format": fmt, "threads": torch.get_num_threads(), **state}

    def write(tmp: Path) -> None:
        try:
            torch.save(state, tmp)
        except RuntimeError as err:  # torch's zip writer reports a short write ("unexpected pos ...") so
            full = shutil.disk_usage(tmp.parent).free < 1 << 20
            raise OSError(errno.ENOSPC if full else errno.EIO, _first_line(err)) from None

    write_atomic(path, write)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", fmt: str = FORMAT) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise NasReproError(f"checkpoint {path} {what}: train the model first (nasrepro train ... --out {path.parent})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if re.search(r"global|reduce|build", str(err), re.IGNORECASE):  # names objects beyond plain data
            raise NasReproError(_refused(path, str(err))) from None
        raise NasReproError(f"checkpoint {path} cannot be read (not a PyTorch file: {_first_line(err)}); "
                            "delete it and retrain") from None
    except OSError as err:
        raise NasReproError(f"checkpoint {path} cannot be read ({err.strerror or err}): check its permissions") from None
    except Exception as err:  # torch raises several types for truncated / foreign files
        raise NasReproError(f"checkpoint {path} cannot be read ({type(err).__name__}: {_first_line(err)}); "
                            "delete it and retrain") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise NasReproError(f"{path} is not a nas-repro checkpoint of format {fmt}; delete it and rerun")
    return state


def _refused(path: Path, message: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", message)
    what = f"the Python object {found.group(1)}" if found else "Python objects other than tensors and plain data"
    return (f"checkpoint {path} was refused: it asks to build {what}, which can run code hidden in the file, "
            "so it was not loaded; nas-repro checkpoints hold only tensors and plain data. Use a checkpoint "
            "written by nasrepro, or retrain")


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def require_keys(state: dict[str, Any], keys: tuple[str, ...], path: str | Path) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise NasReproError(f"checkpoint {path} lacks {', '.join(missing)}: it is incomplete or from another "
                            "version of nas-repro; delete it and retrain")


def load_weights(module: nn.Module, weights: dict[str, Any], path: str | Path, what: str = "model") -> None:
    """`module.load_state_dict(weights)`, or one error naming the checkpoint and what did not fit."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise NasReproError(f"checkpoint {path}: its {what} weights do not fit the network ({_first_line(err)}); "
                            "the checkpoint was written for another architecture: delete it and retrain") from None


def check_resumable(state: dict[str, Any], identity: dict[str, Any], path: str | Path) -> None:
    """A run resumes only from a checkpoint of the same identity (recipe, seed, architecture)."""
    mismatched = [k for k, v in identity.items() if state.get(k) != v]
    if mismatched:
        raise NasReproError(
            f"cannot resume from {path}: its {', '.join(mismatched)} differ from this run's; "
            "delete the checkpoint or rerun without --resume"
        )
    threads = torch.get_num_threads()
    if state.get("threads", threads) != threads:  # CPU reductions split work by thread: results may differ
        print(f"nasrepro: warning: {path} was written with {state['threads']} threads, this run uses {threads}: "
              f"on CPU the resumed run may differ in its last bits from an uninterrupted one (pass --threads "
              f"{state['threads']} to match)", file=sys.stderr)


def model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the network from the spec stored in the checkpoint and load the weights it is
    evaluated with: `eval_model` (averaged or best-epoch weights) when the run kept them, else `model`."""
    from nas_impl.models import build_model

    state = load_checkpoint(path, map_location=device)
    require_keys(state, ("spec", "model"), path)
    model = build_model(state["spec"])
    load_weights(model, state.get("eval_model", state["model"]), path)
    return model.to(device)
