"""Trackers receive per-step metrics and the final results table; local results files stay the source of truth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from prunesweep.config.schema import LoggerConfig


class Tracker(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_table(self, name: str, rows: list[dict[str, Any]]) -> None: ...
    def finish(self, failed: bool = False) -> None: ...


class NullTracker:
    """Tracks nothing (logger=none)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass


class WandbTracker:
    """One W&B run per sweep cell; offline unless WANDB_MODE or logger.mode says otherwise."""

    def __init__(self, cfg: LoggerConfig, run_dir: Path, name: str, config: dict[str, Any]) -> None:
        import wandb  # imported lazily: ~1 s, and only needed with logger=wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self._wandb = wandb
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group,
            tags=list(cfg.tags),
            name=name,
            config=config,
            dir=str(run_dir),
            mode=os.environ.get("WANDB_MODE", cfg.mode),
            reinit="create_new",
        )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """The results as a W&B table, plus one rate-vs-value line plot per (task, metric) and stage."""
        if not rows:
            return
        columns = sorted({key for row in rows for key in row})
        data = [[_plain(row.get(col)) for col in columns] for row in rows]
        logged: dict[str, Any] = {name: self._wandb.Table(columns=columns, data=data)}
        curves: dict[str, list[list[float]]] = {}
        for row in rows:
            stages = ("dense", "pruned", "recovered") if row["stage"] == "dense" else (row["stage"],)
            for stage in stages:  # the dense point starts every stage's curve
                curves.setdefault(f"{row['task']}/{row['metric']}/{stage}", []).append(
                    [row["requested_sparsity"], row["value"]]
                )
        for key, points in curves.items():
            if len(points) > 1:
                table = self._wandb.Table(columns=["rate", "value"], data=sorted(points))
                logged[f"curves/{key}"] = self._wandb.plot.line(table, "rate", "value", title=f"{key} vs rate")
        self.run.log(logged)

    def finish(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def make_tracker(cfg: LoggerConfig, run_dir: Path, name: str, config: dict[str, Any]) -> Tracker:
    if cfg.kind == "none":
        return NullTracker()
    return WandbTracker(cfg, run_dir, name, config)
