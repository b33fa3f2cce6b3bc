"""The lines a finished single run ends with: where its results went and what to run next."""

from __future__ import annotations

from pathlib import Path

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
