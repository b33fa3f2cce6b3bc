"""Highest-rate search under a budget (`hydra/sweeper=rate_search`): each Optuna trial is one ordinary cell; this
module checks the search settings, scores the cell against its dense baseline and keeps the trial beside it."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from prunesweep.store.results import TRIAL_FILE
from prunesweep.util.atomic import write_json
from prunesweep.util.errors import PrunesweepError

log = logging.getLogger(__name__)

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
RATIO_METRICS = {"ppl", "perplexity"}  # lower is better: budgeted as a ratio to dense, not a difference
PENALTY_CAP = 1e6  # an infeasible trial scores -(excess over the budget), capped so the sampler gets a finite value
RATE_DECIMALS = 6  # Optuna's stepped ranges hand out 0.30000000000000004: rates are rounded before they key the store


def is_search(sweeper: DictConfig) -> bool:
    """True when the sweep is driven by the Optuna sweeper, which needs a float back from every trial."""
    return sweeper.get("_target_") == OPTUNA_SWEEPER


def check_search(search: DictConfig, benchmark: DictConfig) -> None:
    """Fail in one line before any model loads when the budgeted measurement cannot exist (the range of
    `max_drop` is checked with every other field by `config.check_config`)."""
    measured = [*benchmark.perplexity, *benchmark.tasks]
    if search.task not in measured:
        raise PrunesweepError(
            f"search.task={search.task!r} is not measured by benchmark {benchmark.name!r} (it measures: {', '.join(measured)})"
        )
    if search.task in benchmark.perplexity and search.metric not in RATIO_METRICS:
        raise PrunesweepError(f"search.metric={search.metric!r}: perplexity task {search.task!r} reports metric 'ppl'")


def score(rows: list[dict[str, Any]], search: DictConfig, rate: float) -> dict[str, Any]:
    """The cell's last measurement of `task/metric` (recovered if it was tuned) against dense: drop, feasibility and
    the objective Optuna maximizes (the rate when feasible, else minus the excess over the budget)."""
    picked = [row for row in rows if row["task"] == search.task and row["metric"] == search.metric]
    dense = [row["value"] for row in picked if row["stage"] == "dense"]
    if not dense:
        have = sorted({f"{row['task']}/{row['metric']}" for row in rows})
        raise PrunesweepError(
            f"search: {search.task}/{search.metric} is not in the cell's records (have: {', '.join(have)})"
        )
    last = max(row["step"] for row in picked)
    value = [row["value"] for row in picked if row["step"] == last][-1]
    drop = value / dense[0] - 1 if search.metric in RATIO_METRICS else dense[0] - value
    feasible = math.isfinite(drop) and drop <= search.max_drop
    excess = drop - search.max_drop if math.isfinite(drop) else PENALTY_CAP
    return {
        "rate": rate,
        "task": search.task,
        "metric": search.metric,
        "dense": dense[0],
        "value": value,
        "drop": drop,
        "max_drop": search.max_drop,
        "feasible": feasible,
        "objective": rate if feasible else -min(excess, PENALTY_CAP),
        "reused": all(row.get("reused", False) for row in rows),
    }


def finish_trial(rows: list[dict[str, Any]], cfg: DictConfig, output_dir: Path, number: int) -> float:
    """Score the cell, keep the trial beside its results (where `prunesweep-report` finds it), say in one line how
    it went and return the objective for the sampler."""
    trial = {"trial": number, "experiment": cfg.experiment_name, **score(rows, cfg.search, cfg.pruner.rate)}
    write_json(output_dir / TRIAL_FILE, trial)
    log.info(
        "trial %d: rate %g, %s/%s %.4g (dense %.4g), drop %.4g %s budget %g%s",
        number, trial["rate"], trial["task"], trial["metric"], trial["value"], trial["dense"], trial["drop"],
        "within" if trial["feasible"] else "over", trial["max_drop"], ", every step from the store" if trial["reused"] else "",
    )  # fmt: skip
    return trial["objective"]
