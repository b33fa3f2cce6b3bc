"""The run config composed from the project's config groups exactly as the `prunesweep` command composes it (for
the command line's own pre-check, scripts, benchmarks and tests)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from prunesweep.config.paths import config_dir, register_resolvers
from prunesweep.config.schema import register_configs


def compose_config(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """`conf/config.yaml` with `overrides` (command-line syntax), untyped pruner node as Hydra leaves it."""
    register_resolvers()
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=return_hydra_config)
