"""What a finished single run ends with: its results as a plain table, where they went and what to run next."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prunesweep.store.results import RESULTS_FILE


def closing_lines(output_dir: Path, outputs_root: Path) -> list[str]:
    """Where a finished run put things: its results file, its W&B run folder (and the upload command for an
    offline run), and the command that pours every run into the paper tables and figures."""
    lines = [f"results: {output_dir / RESULTS_FILE}"]
    for run in sorted((output_dir / "wandb").glob("*run-*")):
        lines.append(f"W&B run: {run}")
        if run.name.startswith("offline-run-"):
            lines.append(f"upload:  wandb sync {run}")
    lines.append(f"tables:  prunesweep-report {outputs_root} --html {outputs_root / 'report.html'}")
    return lines


# (record field, header) of the columns that say which model a table line measured
STEP_COLUMNS = (
    ("step", "step"),
    ("stage", "stage"),
    ("requested_sparsity", "requested"),
    ("achieved_sparsity", "achieved"),
    ("nonzero_params", "nonzero params"),
)


def closing_table(rows: list[dict[str, Any]]) -> str:
    """The run's records as one line per (step, stage) and a column per task/metric, under one header row; every
    column has one number format (integers with thousands separators; fractions 4 decimals, other numbers 2)."""
    lines: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        line = lines.setdefault((row["step"], row["stage"]), {key: row.get(key) for key, _ in STEP_COLUMNS})
        line.setdefault(f"{row['task']}/{row['metric']}", row["value"])
    metrics = list(dict.fromkeys(f"{row['task']}/{row['metric']}" for row in rows))
    columns = [*STEP_COLUMNS, *((metric, metric) for metric in metrics)]
    table = []
    for key, header in columns:
        values = [line.get(key) for line in lines.values()]
        cells = _formatted(values)
        width = max([len(header), *map(len, cells)])
        numeric = all(isinstance(value, int | float) or _missing(value) for value in values)
        table.append([text.rjust(width) if numeric else text.ljust(width) for text in [header, *cells]])
    return "\n".join("  ".join(cells).rstrip() for cells in zip(*table, strict=True))


def _formatted(values: list[Any]) -> list[str]:
    """A column's values in one format; a missing value is `-`."""
    present = [value for value in values if not _missing(value)]
    if all(isinstance(value, int) and not isinstance(value, bool) for value in present):
        spec = ","
    elif all(isinstance(value, int | float) for value in present):
        spec = ".4f" if all(0 <= value <= 1 for value in present) else ".2f"
    else:
        spec = ""
    return ["-" if _missing(value) else format(value, spec) for value in values]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
