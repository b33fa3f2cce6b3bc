"""A cell's steps through the step store: each is reused when a stored entry has it, else computed under the
entry's lock and stored, so parallel cells needing the same step compute it once."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.store.provenance import Origin
from prunesweep.store.steps import StepStore

log = logging.getLogger(__name__)
Rows = list[dict[str, Any]]
# compute() -> (records, model to checkpoint or None, its tokenizer)
Compute = Callable[[], tuple[Rows, PreTrainedModel | None, PreTrainedTokenizerBase | None]]


class Trajectory:
    """Keys of the steps of one cell and the run (`origin`) whose folder their checkpoints are linked into; a
    checkpoint it computes records that run as its provenance."""

    def __init__(self, store: StepStore, keys: list[str], origin: Origin) -> None:
        self.store, self.keys, self.origin = store, keys, origin  # keys[0]: the dense baseline

    def checkpoint(self, step: int) -> Path:
        return self.store.checkpoint(self.keys[step])

    def run(self, step: int, compute: Compute, record: Callable[[int, Rows, bool], None]) -> None:
        """Reuse or compute step `step`; `record(step, rows, reused)` receives its records either way."""
        key = self.keys[step]
        with self.store.lock(key):
            if self.store.is_complete(key):
                rows = [{**row, "reused": True, "store_key": key} for row in self.store.records(key)]
                log.info("step %d: reused %d records from the store (%s)", step, len(rows), key)
            else:
                rows, model, tokenizer = compute()
                rows = self.store.save(key, rows, model, tokenizer, self.origin.of_step(rows))
                rows = [{**row, "reused": False, "store_key": key} for row in rows]
            self._link_checkpoint(step)
        record(step, rows, rows[0]["reused"] if rows else False)

    def _link_checkpoint(self, step: int) -> None:
        """`<run dir>/checkpoints/step_<k>` -> the stored checkpoint, as a relative link: it still resolves when
        the folder holding both (`outputs/`) is moved or mounted elsewhere."""
        target = self.checkpoint(step)
        if not target.is_dir():
            return
        link = self.origin.run_dir / "checkpoints" / f"step_{step}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(target.resolve(), link.parent.resolve()), link, target_is_directory=True)
