"""A single run that fails its settings check leaves nothing behind: the folders Hydra is about to create for
it (`outputs/`, `outputs/runs/<experiment>/`, the run folder) are noted before Hydra creates them and removed
again when the check fails."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

created: Path | None = None  # the outermost folder of the run's path that did not exist before the run


class RunFolder(Callback):
    """Notes, before Hydra creates a single run's folder, the outermost part of its path that is new."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        global created
        created = first_missing(Path(str(config.hydra.run.dir)).absolute())


def first_missing(path: Path) -> Path | None:
    """The outermost of `path` and its parents that does not exist, or None when `path` exists."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def discard() -> None:
    """Remove the folders this run created (its log file handler is closed first)."""
    if created is None:
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).is_relative_to(created):
            handler.close()
            logging.getLogger().removeHandler(handler)
    shutil.rmtree(created, ignore_errors=True)
