"""Shared pytest fixtures."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Iterator
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


@pytest.fixture(scope="session", autouse=True)
def task_index_once() -> Iterator[None]:
    """lm-eval indexes its ~14k task files (tens of seconds) for every TaskManager; in-process evaluations of the
    suite share one index per folder list (each caller gets its own copy, so none sees another's edits). The log
    records of the build (task overrides) are replayed to every caller, through the logger's filters of the time."""
    from lm_eval.tasks._index import TaskIndex

    build, index_log = TaskIndex.build, logging.getLogger("lm_eval.tasks._index")
    built: dict[tuple, tuple[dict, list[logging.LogRecord]]] = {}

    def cached(paths: Iterable[Path], *, resolve_includes: bool = True) -> dict:
        paths = list(paths)
        key = (tuple(str(p) for p in paths), resolve_includes)
        if key not in built:
            records: list[logging.LogRecord] = []
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(index_log, "handle", records.append)  # before the filters
                built[key] = (build(paths, resolve_includes=resolve_includes), records)
        index, records = built[key]
        for record in records:
            index_log.handle(record)
        return copy.deepcopy(index)

    TaskIndex.build = staticmethod(cached)
    yield
    TaskIndex.build = staticmethod(build)
