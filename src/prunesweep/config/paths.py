"""Project locations and the OmegaConf resolvers the configs use."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parents[1]
log = logging.getLogger(__name__)


def project_root() -> str:
    """Where `outputs/` goes: $PRUNESWEEP_ROOT, else the working directory (as every Hydra app), wherever the
    package is installed; the configs are package data, found independently of it."""
    return str(Path(os.environ.get("PRUNESWEEP_ROOT") or Path.cwd()).resolve())


# A folder name longer than this is cut and given a hash of the whole name (file systems allow 255 bytes).
MAX_FOLDER_BYTES = 160


def path_safe(name: str) -> str:
    """`name` as one path component: '/' becomes %2F and a name over `MAX_FOLDER_BYTES` is cut to a prefix plus a
    hash of the whole (said once per name), so no value escapes its folder or overflows the file system's limit."""
    safe = str(name).replace("/", "%2F")
    if len(safe.encode()) > MAX_FOLDER_BYTES:
        digest = hashlib.sha256(safe.encode()).hexdigest()[:16]
        safe = safe.encode()[: MAX_FOLDER_BYTES - 17].decode(errors="ignore") + "-" + digest
    if safe != name:
        _say_sanitised(str(name), safe)
    return safe


@functools.cache
def _say_sanitised(name: str, safe: str) -> None:
    log.warning("folder name %r has a '/' or is too long: written as %r", name, safe)


def config_dir() -> str:
    """Absolute path of the Hydra config folder, `conf/`."""
    return str(resource_dir("conf"))


def experiments_dir() -> Path:
    """The paper-grid folders (`experiments/<table>/`: README, reference.csv, table spec)."""
    return resource_dir("experiments")


def resource_dir(name: str) -> Path:
    """A top-level folder of the source tree (`conf`, `experiments`): inside the package in a built wheel, which
    carries it there; beside `src/` in a checkout or an editable install."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parents[1] / name


def group_options(group: str, roots: list[Path]) -> list[str]:
    """The config files of group `group` (e.g. every preset under `conf/experiment/`) in any config root."""
    return sorted({path.stem for root in roots for path in (root / group).glob("*.yaml")})


def config_groups() -> str:
    """`group: option, ...` lines of the shipped config groups, for `prunesweep --help` (Hydra's own list shows
    the typed schemas, `_schema`, as if they were options)."""
    root = Path(config_dir())
    groups = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_dir())
    return "\n".join(f"{group}: {', '.join(group_options(group, [root]))}" for group in groups if group != "hydra")


def subfolder(name: str | None) -> str:
    """`/<name>`, or nothing when `name` is unset (a sweep without an Optuna study name keeps its folder)."""
    return f"/{name}" if name else ""


def process_id() -> str:
    """This process's id: with the start time it names a run folder no other live run can have."""
    return str(os.getpid())


def register_resolvers() -> None:
    """Register `${project_root:}`, `${subfolder:name}`, `${path_safe:...}`, `${pid:}` and `${config_groups:}`
    (idempotent)."""
    resolvers = (
        ("project_root", project_root),
        ("config_groups", config_groups),
        ("subfolder", subfolder),
        ("path_safe", path_safe),
        ("pid", process_id),
    )
    for name, resolver in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
