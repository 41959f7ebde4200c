"""What every result records about how it was produced."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

import nas_impl
from nas_impl.metrics.latency import device_name


def git_commit() -> str | None:
    repo = Path(nas_impl.__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "nas_impl": nas_impl.__version__,
        "nas_impl_commit": git_commit(),
    }
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except Exception:  # torchvision is optional outside ImageNet loading
        out["torchvision"] = None
    return out


def run_provenance(device: torch.device, seed: int) -> dict:
    return {
        "seed": seed,
        "versions": versions(),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "allocator": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"},
    }
