"""Tiny random models for tests, built from the project's own `model=tiny_llama` / `model=tiny_gpt2` configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import open_dict

from prunesweep.models.loader import LoadedModel, load_model
from tests.compose import compose_config


def tiny_model(
    arch: str = "llama", seed: int = 0, offload: str = "none", cache_dir: str | Path = "unused", **random_config: Any
) -> LoadedModel:
    """`tiny_<arch>` (llama: GQA 4 heads / 2 KV heads; gpt2), with optional config overrides, under
    `model.offload=<offload>` (`disk`: its files in a folder below `cache_dir`)."""
    cfg = compose_config([f"model=tiny_{arch}", f"model.offload={offload}"]).model
    with open_dict(cfg):
        cfg.random_config.update(random_config)
    return load_model(cfg, cache_dir=cache_dir, seed=seed)
