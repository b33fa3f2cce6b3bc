"""Compose the project's Hydra config in tests, exactly as the CLI does."""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from prunesweep.config import register_configs
from prunesweep.paths import config_dir, register_resolvers
from prunesweep.pruning.base import Pruner
from prunesweep.pruning.registry import build_pruner, typed_pruner_config


def compose_config(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    register_resolvers()
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=return_hydra_config)


def make_pruner(preset: str, **options: Any) -> Pruner | None:
    """The pruner of `conf/pruner/<preset>.yaml` with `options` overridden, as the runner builds it."""
    node = compose_config([f"pruner={preset}"]).pruner
    OmegaConf.set_struct(node, False)  # as a `+pruner.key=value` override would add it
    node.merge_with(options)
    return build_pruner(typed_pruner_config(node))
