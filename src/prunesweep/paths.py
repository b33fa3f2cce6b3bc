"""Project locations and the OmegaConf resolvers the configs use."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> str:
    """The checkout root (folder holding `src/prunesweep`), or the current directory for non-editable installs."""
    env = os.environ.get("PRUNESWEEP_ROOT")
    if env:
        return str(Path(env).resolve())
    candidate = PACKAGE_DIR.parents[1]
    if (candidate / "src" / "prunesweep").is_dir():
        return str(candidate)
    return str(Path.cwd())


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
    """Register `${project_root:}` and `${subfolder:name}` (idempotent)."""
    for name, resolver in (("project_root", project_root), ("subfolder", subfolder)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
