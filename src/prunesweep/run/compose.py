"""The run config composed from the project's config groups exactly as the `prunesweep` command composes it, and
a method built from its preset: for scripts, benchmarks and tests."""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from prunesweep.config.paths import config_dir, register_resolvers
from prunesweep.config.schema import register_configs


def compose_config(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """`conf/config.yaml` with `overrides` (command-line syntax), untyped pruner node as Hydra leaves it."""
    register_resolvers()
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=return_hydra_config)


def make_pruner(preset: str, **options: Any):
    """The pruner of `conf/pruner/<preset>.yaml` with `options` set, checked, typed and built as the runner does."""
    from prunesweep.pruning.registry import checked_settings  # imports torch

    cfg = compose_config([f"pruner={preset}"])
    OmegaConf.set_struct(cfg, False)  # as a `+pruner.key=value` override would add it
    cfg.pruner.merge_with(options)
    return checked_settings(cfg)[1]
