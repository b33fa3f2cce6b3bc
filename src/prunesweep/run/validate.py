"""A run's settings and inputs checked before anything heavy: the plan every later stage works from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from prunesweep.config.schema import check_config
from prunesweep.models.sources import check_model_source
from prunesweep.run.schedule import check_schedule, rates
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:
    from prunesweep.pruning.base import Pruner


@dataclass
class RunPlan:
    """A validated run: its config (pruner node typed), what to prune with, the cumulative rates to visit,
    and the inputs' fingerprints."""

    cfg: DictConfig
    pruner: Pruner | None
    rates: list[float]
    inputs: dict[str, Any]
    fit_checked: bool  # False: the architecture could not be read before the load; checked on the loaded model


def validate(cfg: DictConfig) -> RunPlan:
    """Every check that needs no model: bad values, unknown names and missing files fail here, in one line."""
    check_config(cfg)
    if not Path(cfg.paths.data_dir).is_dir():
        raise PrunesweepError(f"paths.data_dir {cfg.paths.data_dir!r} does not exist (set PRUNESWEEP_DATA_DIR)")
    check_model_source(cfg.model)
    # Imported after the checks above, so a bad value or a missing folder fails before torch and transformers load
    # (seconds).
    from prunesweep.evaluation.checks import check_benchmark
    from prunesweep.models.loader import architecture_config, check_model_config
    from prunesweep.pruning.registry import checked_settings
    from prunesweep.recovery import check_recovery
    from prunesweep.run.fingerprint import fingerprints
    from prunesweep.run.fit import check_fits
    from prunesweep.run.inputs import check_inputs, run_inputs
    from prunesweep.run.teacher import check_teacher, distils

    cfg, pruner = checked_settings(cfg)
    check_schedule(cfg.schedule)
    check_model_config(cfg.model)
    check_benchmark(cfg.benchmark, cfg.paths.data_dir)
    check_recovery(cfg.recovery, cfg.paths.data_dir)
    uses_calibration = pruner is not None and pruner.uses_calibration
    visited = rates(cfg.schedule) if pruner is not None and cfg.schedule.target > 0 else []
    if pruner is not None:
        pruner.check_rates(visited)
    inputs = run_inputs(cfg, uses_calibration)
    check_inputs(cfg, inputs)
    architecture = architecture_config(cfg.model, cfg.paths.cache_dir)
    if architecture is not None:
        check_fits(cfg, pruner, visited, architecture)
    if distils(cfg):
        check_teacher(cfg, architecture)
    return RunPlan(cfg, pruner, visited, fingerprints(cfg, inputs), architecture is not None)
