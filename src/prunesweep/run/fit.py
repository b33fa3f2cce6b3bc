"""Does the run fit the model's architecture? Context lengths and the method's own shape limits, checked from the
architecture config alone, so a misfit fails in one line before the weights load."""

from __future__ import annotations

from omegaconf import DictConfig
from transformers import PretrainedConfig

from prunesweep.pruning.base import Pruner
from prunesweep.util.errors import PrunesweepError


def context_length(config: PretrainedConfig) -> int | None:
    """Positions the model was built for (`max_position_embeddings`; GPT-2 maps `n_positions` onto it)."""
    return getattr(config, "max_position_embeddings", None)


def sequence_lengths(cfg: DictConfig, pruner: Pruner | None) -> dict[str, int]:
    """Every sequence length the run feeds the model, by setting name."""
    lengths = {"benchmark.ppl_seq_len": cfg.benchmark.ppl_seq_len}
    if cfg.benchmark.max_length is not None:
        lengths["benchmark.max_length"] = cfg.benchmark.max_length
    if pruner is not None and pruner.uses_calibration:
        lengths["pruner.calibration.seq_len"] = cfg.pruner.calibration.seq_len
    if cfg.recovery.kind != "none":
        lengths["recovery.cutoff_len"] = cfg.recovery.cutoff_len
    return lengths


def check_fits(cfg: DictConfig, pruner: Pruner | None, rates: list[float], config: PretrainedConfig) -> None:
    """Raise PrunesweepError naming the first setting the model `config` cannot run."""
    limit = context_length(config)
    for key, length in sequence_lengths(cfg, pruner).items():
        if limit is not None and length > limit:
            raise PrunesweepError(
                f"{key}={length} exceeds the {limit} positions of model {cfg.model.name!r}: use at most {limit}"
            )
    if pruner is not None and rates:
        pruner.check_architecture(config, rates)
