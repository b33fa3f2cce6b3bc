"""Project locations and the OmegaConf resolvers the configs use."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def project_root() -> str:
    """The checkout root (folder holding `conf/`), or the current directory for non-editable installs."""
    env = os.environ.get("PRUNESWEEP_ROOT")
    if env:
        return str(Path(env).resolve())
    candidate = Path(__file__).resolve().parents[2]
    if (candidate / "conf").is_dir():
        return str(candidate)
    return str(Path.cwd())


def config_dir() -> str:
    """Absolute path of the Hydra config folder."""
    return str(Path(project_root()) / "conf")


def register_resolvers() -> None:
    """Register `${project_root:}` (idempotent)."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", project_root)
