"""Pruning-rate schedules: a pure function step -> cumulative target sparsity."""

from __future__ import annotations

from prunesweep.config.schema import ScheduleConfig
from prunesweep.util.errors import PrunesweepError


def check_schedule(cfg: ScheduleConfig) -> None:
    """One-line error for a schedule that cannot run (kind, steps and rate ranges: the schema's)."""
    if cfg.kind == "explicit":
        points = list(cfg.milestones or [])
        if not points or points != sorted(set(points)) or points[0] <= 0.0:
            raise PrunesweepError(f"schedule.milestones={points} must be non-empty, strictly increasing and > 0")
    if not 0.0 <= cfg.initial <= cfg.target:
        raise PrunesweepError(f"schedule.initial={cfg.initial} must be in [0, target={cfg.target}]")


def target_at(cfg: ScheduleConfig, step: int) -> float:
    """Cumulative sparsity after step `step` (1-based); the last step always reaches `target`.

    - oneshot: target at once (steps forced to 1)
    - linear: initial + (target - initial) * t, t = step/steps
    - constant: the same fraction of the *remaining* weights per step: 1 - (1-target)^t
    - exponential: geometric from initial to target (initial=0: the rate doubles each step, target*2^(step-steps))
    - cubic: Zhu & Gupta 2017, target + (initial - target) * (1 - t)^3
    - explicit: the listed `milestones` below the target, then the target (Gholami & Omar: 0.1 -> 0.3 -> 0.5;
      with the same milestones a sweep over rate=0.1,0.3,0.5 walks one shared trajectory)
    """
    steps = num_steps(cfg)
    if not 1 <= step <= steps:
        raise ValueError(f"step {step} outside 1..{steps}")
    t = step / steps
    start, end = cfg.initial, cfg.target
    if cfg.kind == "explicit":
        return explicit_rates(cfg)[step - 1]
    if cfg.kind in ("oneshot", "linear"):
        return start + (end - start) * t
    if cfg.kind == "constant":
        return 1.0 - (1.0 - start) * ((1.0 - end) / (1.0 - start)) ** t
    if cfg.kind == "exponential":
        return start * (end / start) ** t if start > 0 else end * 2.0 ** (step - steps)
    return end + (start - end) * (1.0 - t) ** 3


def explicit_rates(cfg: ScheduleConfig) -> list[float]:
    return [float(m) for m in cfg.milestones if m < cfg.target] + [float(cfg.target)]


def num_steps(cfg: ScheduleConfig) -> int:
    if cfg.kind == "oneshot":
        return 1
    return len(explicit_rates(cfg)) if cfg.kind == "explicit" else cfg.steps


def rates(cfg: ScheduleConfig) -> list[float]:
    """All cumulative targets of the schedule, in order."""
    return [target_at(cfg, step) for step in range(1, num_steps(cfg) + 1)]
