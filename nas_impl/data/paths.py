"""Where datasets live: an explicit root, else $NASREPRO_DATA, else ./data."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "NASREPRO_DATA"


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: `root` if given, else the NASREPRO_DATA environment variable, else ./data."""
    if root is not None:
        return Path(root)
    from_env = os.environ.get(DATA_ROOT_ENV)
    return Path(from_env) if from_env else Path("data")
