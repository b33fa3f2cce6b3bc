"""What a benchmark needs, checked before any model loads: known corpora and tasks, their data files on disk.
Imports no lm-eval for offline tasks, so a bad name fails in a second."""

from __future__ import annotations

from pathlib import Path

from prunesweep.config.schema import BenchmarkConfig
from prunesweep.data.corpora import corpus_file
from prunesweep.evaluation.tasks import HUB_NAMES, NO_OFFLINE_DATA
from prunesweep.evaluation.tasks.loaders import DATASETS
from prunesweep.util.errors import PrunesweepError


def check_benchmark(cfg: BenchmarkConfig, data_dir: str) -> None:
    """Fail in one line, before any model loads, on unknown corpora/tasks or missing files (value ranges:
    `config.check_config`)."""
    for name in cfg.perplexity:  # the names are the schema's choices
        corpus_file(name, data_dir)
    if cfg.tasks:
        check_tasks(list(cfg.tasks), data_dir, cfg.offline)


def check_tasks(tasks: list[str], data_dir: str, offline: bool) -> None:
    """Raise PrunesweepError (one clear line) for an unknown task name or a missing data file.

    Offline this only looks at names and files; online it indexes lm-eval's built-in tasks once (~8 s).
    """
    if not offline:
        from prunesweep.evaluation.harness import task_manager  # imports lm-eval: only for hub tasks

        manager = task_manager(None)
        for name in tasks:
            lm_name = HUB_NAMES.get(name, name)
            if lm_name not in manager.all_subtasks:
                kind = "a group/tag, not a single task" if lm_name in manager.all_tasks else "unknown"
                raise PrunesweepError(f"lm-eval task {lm_name!r} (benchmark task {name!r}) is {kind}")
        return
    for name in tasks:
        if name in NO_OFFLINE_DATA:
            raise PrunesweepError(
                f"benchmark task {name!r} has no offline data in {data_dir} (see SOURCES.md): "
                "run it with benchmark.offline=false"
            )
        if name not in DATASETS:
            raise PrunesweepError(f"unknown offline benchmark task {name!r}; known: {', '.join(sorted(DATASETS))}")
        for rel in DATASETS[name].files:
            if not (Path(data_dir) / rel).is_file():
                raise PrunesweepError(f"benchmark task {name!r}: data file {Path(data_dir) / rel} not found")
