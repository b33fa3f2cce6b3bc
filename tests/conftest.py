"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The offline data folder: $PRUNESWEEP_DATA_DIR, else <repo root>/../shared/data."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return str(Path(os.environ.get("PRUNESWEEP_DATA_DIR") or default).resolve())
