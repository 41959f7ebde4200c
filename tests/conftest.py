"""Shared test fixtures."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: $NASREPRO_SHARED/data, default ../shared/data beside the repo."""
    shared = Path(os.environ.get("NASREPRO_SHARED", REPO_ROOT.parent / "shared"))
    data = shared / "data"
    if not data.is_dir():
        pytest.skip(f"shared data not found at {data}; set NASREPRO_SHARED to the shared folder")
    return data
