"""Compose the project's Hydra config in tests, exactly as the CLI does."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from prunesweep.config import register_configs
from prunesweep.paths import config_dir, register_resolvers


def compose_config(overrides: list[str]) -> DictConfig:
    register_resolvers()
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)
