"""Rate-vs-metric line plots like the papers' figures: one PNG per table column, one line per method and stage.

Ours are drawn solid, the papers' dashed; error bars are the seeds' std (several seeds) or the recorded stderr. Lines share axes only where they were measured the same way (protocol,
e.g. `seq 128` or `0-shot`); each other protocol gets a panel of its own."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot state, no window
from matplotlib.ticker import Formatter, LogFormatterSciNotation

from prunesweep.reporting.collect import EFFICIENCY_TASK, NOT_SET
from prunesweep.reporting.tables import LOG_METRICS, OURS, PERCENT_METRICS, ROW_KEYS, STAGE_LABELS, Grid
from prunesweep.util.atomic import atomic_dir

MARKERS = {"pruned": "o", "recovered": "^"}
PANEL_WIDTH, MIN_HEIGHT = 8.0, 4.0  # inches per panel (its legend to the right included)
LEGEND_LINE = 0.16  # inches per x-small legend entry: the figure grows with its longest legend


def _lines(frame: pd.DataFrame, keys: list[str]) -> list[tuple[str, tuple[str, ...], pd.DataFrame]]:
    """(label, colour key, points) per (source, model, variant, stage, ...), starting at its model's dense point."""
    line_keys = [k for k in keys if k != "rate"]
    dense = frame[frame["stage"] == "dense"]
    lines = []
    for ident, points in frame[frame["stage"] != "dense"].groupby(line_keys, sort=True):
        named = dict(zip(line_keys, ident, strict=True))
        start = dense[dense["model"] == named["model"]]
        extras = [str(named[k]) for k in line_keys if k not in ROW_KEYS and named[k] != NOT_SET]
        label = " ".join([named["variant"], STAGE_LABELS[named["stage"]], *extras])
        if named["source"] != OURS:
            label = f"{named['source']} ({named['model']}): {label}"
        lines.append((label, (named["variant"], *extras), pd.concat([start, points]).sort_values("rate")))
    return lines


def error(points: pd.DataFrame) -> pd.Series:
    """Each point's error bar: the seeds' std where several seeds were run, else the recorded stderr (or none)."""
    return points["std"].where(points["seeds"] > 1, points["stderr"])


def plain(value: float) -> str:
    """A tick value as a plain number: `12.5`, `250`, `40000` (never `1.25×10¹`)."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


class PlainLogFormatter(Formatter):
    """Log-axis tick labels as plain numbers, on the ticks matplotlib's log formatter would label."""

    def __init__(self, minor: bool) -> None:
        self.log = LogFormatterSciNotation(labelOnlyBase=not minor)

    def set_axis(self, axis: Axis) -> None:
        super().set_axis(axis)
        self.log.set_axis(axis)

    def set_locs(self, locs: Sequence[float]) -> None:
        self.log.set_locs(locs)

    def __call__(self, x: float, pos: int | None = None) -> str:
        return plain(x) if self.log(x, pos) else ""


def _file_name(column: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", column).strip("_").lower()


def render(grid: Grid) -> dict[str, Figure]:
    """One figure per column with pruned points, keyed by file stem (efficiency columns only in an efficiency table).

    Points whose rate the paper does not state have no place on the x axis and are left out."""
    measured = grid.long.dropna(subset=["value", "rate"])
    if any(column.task != EFFICIENCY_TASK for column in grid.spec.columns):
        measured = measured[measured["task"] != EFFICIENCY_TASK]
    figures = {}
    for column, frame in measured.groupby("column", sort=False):
        panels = [(protocol, _lines(part, grid.keys)) for protocol, part in frame.groupby("protocol", sort=True)]
        panels = [(protocol, lines) for protocol, lines in panels if lines]
        if panels:
            figures[_file_name(str(column))] = _figure(grid, str(column), frame["metric"].iloc[0], panels)
    return figures


def _figure(grid: Grid, column: str, metric: str, panels: list) -> Figure:
    colour_keys = sorted({key for _, lines in panels for _, key, _ in lines})
    colours = {key: f"C{i % 10}" for i, key in enumerate(colour_keys)}  # one colour per method, ours and theirs
    scale = 100 if metric in PERCENT_METRICS else 1
    entries = max(len(lines) for _, lines in panels)
    fig = Figure(figsize=(PANEL_WIDTH * len(panels), max(MIN_HEIGHT, LEGEND_LINE * entries + 1.2)))
    for ax, (protocol, lines) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        for label, key, points in lines:
            last = points.iloc[-1]
            ax.plot(
                points["rate"],
                points["value"] * scale,
                color=colours[key],
                linestyle="-" if last["source"] == OURS else "--",
                marker=MARKERS.get(last["stage"], "s"),
                label=label,
            )
            ax.errorbar(
                points["rate"], points["value"] * scale, yerr=error(points) * scale, fmt="none", ecolor=colours[key]
            )
        if metric in LOG_METRICS:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PlainLogFormatter(minor=False))
            ax.yaxis.set_minor_formatter(PlainLogFormatter(minor=True))
        ax.set_xlabel("pruning rate (requested)")
        ax.set_ylabel(f"{column} (%)" if scale == 100 else column)
        ours = any(points["source"].eq(OURS).any() for _, _, points in lines)
        size = f"; ours: {grid.sizes[column]}" if ours and column in grid.sizes else ""
        ax.set_title(f"protocol: {'not stated' if protocol == NOT_SET else protocol}{size}", fontsize="small")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle(f"{grid.spec.name}: {column}")
    fig.tight_layout()  # room for the axis labels and the legends (a fixed margin cut the y label off)
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (its layout already fits every label and legend: no `bbox_inches` pass)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def draw(grid: Grid, folder: Path) -> dict[str, bytes]:
    """Write `folder/<column>.png` per figure of `render` (the folder is replaced atomically); returns the PNGs."""
    images = {name: png(fig) for name, fig in render(grid).items()}
    with atomic_dir(folder) as tmp:
        for name, image in images.items():
            (tmp / f"{name}.png").write_bytes(image)
    return images
