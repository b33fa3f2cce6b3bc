"""Hydra callback that gives a `--multirun` sweep an honest exit status: every job leaves its outcome in
`<sweep dir>/.outcomes/` (so it works for launchers that run jobs in other processes), and the launching
process reads them all when the sweep ends."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from prunesweep.util.atomic import write_json

OUTCOMES = ".outcomes"


@dataclass
class SweepSummary:
    ok: int
    failed: list[str]  # cell folders; each one's status.json says why
    sweep_dir: str

    def line(self) -> str:
        more = f" (+{len(self.failed) - 5} more)" if len(self.failed) > 5 else ""
        where = f"; reasons in <cell>/status.json of {', '.join(self.failed[:5])}{more}" if self.failed else ""
        return f"{self.ok} ok / {len(self.failed)} failed in {self.sweep_dir}{where}"


last_sweep: SweepSummary | None = None  # set in the launching process by `on_multirun_end`


class SweepOutcomes(Callback):
    """Records each cell's outcome (the app returns False for a failed cell) and summarises the sweep."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        shutil.rmtree(_outcomes(config), ignore_errors=True)  # a re-run counts only its own cells

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        ok = job_return.status == JobStatus.COMPLETED and job_return._return_value is not False
        cell = Path(config.hydra.runtime.output_dir).name
        write_json(_outcomes(config) / f"{config.hydra.job.num}.json", {"cell": cell, "ok": ok})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global last_sweep
        records = [json.loads(path.read_text()) for path in sorted(_outcomes(config).glob("*.json"))]
        failed = [record["cell"] for record in records if not record["ok"]]
        last_sweep = SweepSummary(len(records) - len(failed), failed, str(config.hydra.sweep.dir))


def _outcomes(config: DictConfig) -> Path:
    return Path(config.hydra.sweep.dir) / OUTCOMES
