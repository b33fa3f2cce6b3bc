"""Rate-vs-metric line plots like the papers' figures: one PNG per table column, one line per method and stage."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot state, no window

from prunesweep.atomic import atomic_dir
from prunesweep.reporting.collect import EFFICIENCY_TASK
from prunesweep.reporting.tables import LOG_METRICS, OURS, PERCENT_METRICS, STAGE_LABELS, Grid

MARKERS = {"pruned": "o", "recovered": "^"}


def _lines(frame: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """One line per (source, model, variant, stage, ...), starting at its model's dense point (rate 0)."""
    line_keys = [k for k in keys if k != "rate"]
    dense = frame[frame["stage"] == "dense"]
    lines = []
    for ident, points in frame[frame["stage"] != "dense"].groupby(line_keys, sort=True):
        named = dict(zip(line_keys, ident, strict=True))
        start = dense[dense["model"] == named["model"]]
        extras = [str(named[k]) for k in line_keys if k not in {"source", "model", "variant", "stage"}]
        label = " ".join([named["variant"], STAGE_LABELS[named["stage"]], *extras])
        if named["source"] != OURS:
            label = f"{named['source']} ({named['model']}): {label}"
        lines.append((label, pd.concat([start, points]).sort_values("rate")))
    return lines


def draw(grid: Grid, folder: Path) -> None:
    """Write `folder/<column>.png` per column with pruned points (efficiency columns only in an efficiency table).

    The folder is replaced atomically.
    """
    measured = grid.long.dropna(subset=["value"])
    if any(column.task != EFFICIENCY_TASK for column in grid.spec.columns):
        measured = measured[measured["task"] != EFFICIENCY_TASK]
    pruned = measured.loc[measured["stage"] != "dense", "variant"]
    colors = {variant: f"C{i % 10}" for i, variant in enumerate(sorted(set(pruned)))}  # one colour per method
    with atomic_dir(folder) as tmp:
        for column, frame in measured.groupby("column", sort=False):
            lines = _lines(frame, grid.keys)
            if not lines:
                continue
            metric = frame["metric"].iloc[0]
            scale = 100 if metric in PERCENT_METRICS else 1
            fig = Figure(figsize=(9, 4))
            fig.subplots_adjust(left=0.08, right=0.6, bottom=0.13)  # fixed margins: constrained layout is 2x slower
            ax = fig.subplots()
            for label, points in lines:
                last = points.iloc[-1]  # dashed for the paper, marker per stage
                ax.plot(
                    points["rate"],
                    points["value"] * scale,
                    color=colors[last["variant"]],
                    linestyle="-" if last["source"] == OURS else "--",
                    marker=MARKERS[last["stage"]],
                    label=label,
                )
            if metric in LOG_METRICS:
                ax.set_yscale("log")
            ax.set_xlabel("pruning rate (requested)")
            ax.set_ylabel(f"{column} (%)" if scale == 100 else str(column))
            ax.set_title(f"{grid.spec.name}: {column}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
            name = re.sub(r"[^A-Za-z0-9]+", "_", str(column)).strip("_").lower()
            fig.savefig(tmp / f"{name}.png", dpi=120)
