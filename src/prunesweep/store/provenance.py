"""Where a checkpoint came from: the run, method and step that wrote it, saved as JSON beside its weights.

The step store writes it into every checkpoint it saves, so a checkpoint evaluated outside the runner (`lm_eval`,
`prunesweep-eval`) can be put back into the run's tables. Light module: no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROVENANCE = "prunesweep_provenance.json"
FORMAT = "prunesweep.store.provenance/1"
# Per-stage record fields of the step that produced the checkpoint.
STAGE_KEYS = ("step", "stage", "requested_sparsity", "achieved_sparsity", "total_params", "nonzero_params")


@dataclass(frozen=True)
class Origin:
    """The run whose steps are being saved: its folder, the columns shared by its records, its resolved config."""

    run_dir: Path
    cell: dict[str, Any]
    config: dict[str, Any]

    def of_step(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Provenance of the checkpoint a step saves; `rows` are its records, the final stage (the model saved) last."""
        final = rows[-1] if rows else {}
        return {
            "format": FORMAT,
            "run_dir": str(self.run_dir.resolve()),
            "record": {**self.cell, **{key: final[key] for key in STAGE_KEYS if key in final}},
            "config": self.config,
        }


def read_provenance(folder: str | Path) -> dict[str, Any] | None:
    """The provenance saved in checkpoint `folder`, or None if it has none (not written by the step store)."""
    path = Path(folder) / PROVENANCE
    if not path.is_file():
        return None
    return json.loads(path.read_text())
