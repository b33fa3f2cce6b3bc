"""Project locations and the OmegaConf resolvers the configs use."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
log = logging.getLogger(__name__)


def project_root() -> str:
    """Where `outputs/` goes: $PRUNESWEEP_ROOT, else the working directory (as every Hydra app), wherever the
    package is installed; the configs are package data, found independently of it."""
    return str(Path(os.environ.get("PRUNESWEEP_ROOT") or Path.cwd()).resolve())


def path_safe(name: str) -> str:
    """`name` as one path component: '/' becomes %2F (said once per name), so no value escapes its folder."""
    safe = str(name).replace("/", "%2F")
    if safe != name:
        _say_sanitised(str(name), safe)
    return safe


@functools.cache
def _say_sanitised(name: str, safe: str) -> None:
    log.warning("folder name %r contains '/': written as %r", name, safe)


def config_dir() -> str:
    """Absolute path of the Hydra config folder (package data, so wheels carry it)."""
    return str(PACKAGE_DIR / "conf")


def experiments_dir() -> Path:
    """The paper-grid folders (`<table>/reference.csv`, README), package data too."""
    return PACKAGE_DIR / "experiments"


def subfolder(name: str | None) -> str:
    """`/<name>`, or nothing when `name` is unset (a sweep without an Optuna study name keeps its folder)."""
    return f"/{name}" if name else ""


def register_resolvers() -> None:
    """Register `${project_root:}`, `${subfolder:name}` and `${path_safe:...}` (idempotent)."""
    for name, resolver in (("project_root", project_root), ("subfolder", subfolder), ("path_safe", path_safe)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
