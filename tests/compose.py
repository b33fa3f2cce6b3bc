"""Compose the project's Hydra config in tests, exactly as the CLI does."""

from prunesweep.run.compose import compose_config, make_pruner

__all__ = ["compose_config", "make_pruner"]
