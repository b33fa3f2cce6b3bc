"""Map `pruner.name` to its implementation."""

from __future__ import annotations

from prunesweep.config import PrunerConfig
from prunesweep.errors import PrunesweepError
from prunesweep.pruning.base import Pruner
from prunesweep.pruning.magnitude import MagnitudePruner
from prunesweep.pruning.structural.llm_pruner import LLMPruner

PRUNERS: dict[str, type[Pruner]] = {
    "magnitude": MagnitudePruner,
    "llm_pruner": LLMPruner,
}


def build_pruner(cfg: PrunerConfig) -> Pruner | None:
    """The pruner for `cfg`, or None for `pruner=none` (dense baseline)."""
    if cfg.name == "none":
        return None
    if cfg.name not in PRUNERS:
        raise PrunesweepError(f"unknown pruner {cfg.name!r}; known: none, {', '.join(sorted(PRUNERS))}")
    if not 0.0 <= cfg.rate < 1.0:
        raise PrunesweepError(f"pruner.rate={cfg.rate} must be in [0, 1)")
    return PRUNERS[cfg.name](cfg)
