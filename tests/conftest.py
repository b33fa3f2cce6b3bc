"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The offline data folder: $PRUNESWEEP_DATA_DIR, else <repo root>/../shared/data."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return str(Path(os.environ.get("PRUNESWEEP_DATA_DIR") or default).resolve())


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    """Tiny models run fastest on one thread (and CLI subprocesses inherit it): no OpenMP oversubscription."""
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
