"""Content-addressed store of finished pruning steps: how sweeps share work and resume.

A step's key hashes everything that shapes the model up to that step (model, pruner settings except the final
rate, recovery, benchmark, seed) plus the cumulative rates visited so far. So a cell whose rates are a prefix of
another's (an iterative run to 0.3 vs one to 0.5), a re-run of a finished cell, or a killed cell restarted, all
find their finished steps here. Entries are written atomically (records + checkpoint in one rename)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.atomic import atomic_dir, atomic_path, write_jsonl
from prunesweep.checkpoint import checkpoint_bytes, save_checkpoint
from prunesweep.hashing import content_key
from prunesweep.results import NON_IDENTITY_KEYS, read_results

RECORDS = "records.jsonl"
CHECKPOINT = "checkpoint"


def dense_key(resolved: dict[str, Any]) -> str:
    """The dense baseline depends only on the model, the benchmark and the seed."""
    return content_key({"dense": {key: resolved[key] for key in ("model", "benchmark", "seed")}})


def trajectory_keys(resolved: dict[str, Any], rates: list[float]) -> list[str]:
    """Keys of the model before any step (index 0) and after each step of the trajectory `rates`.

    The final rate and the schedule kind are not part of a key: only the rates actually visited are."""
    trajectory = {key: value for key, value in resolved.items() if key not in (*NON_IDENTITY_KEYS, "schedule")}
    trajectory["pruner"] = {key: value for key, value in resolved["pruner"].items() if key != "rate"}
    return [
        content_key({"trajectory": trajectory, "rates": [round(r, 8) for r in rates[:k]]})
        for k in range(len(rates) + 1)
    ]


class StepStore:
    """Folder of `<key>/records.jsonl` (+ `<key>/checkpoint/`) entries and `memo/<key>.safetensors` tensors."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Exclusive per-key lock, so parallel cells (joblib, submitit) compute a shared step only once."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def is_complete(self, key: str) -> bool:
        return (self.root / key / RECORDS).is_file()

    def records(self, key: str) -> list[dict[str, Any]]:
        return read_results(self.root / key / RECORDS)

    def checkpoint(self, key: str) -> Path:
        return self.root / key / CHECKPOINT

    def save(
        self,
        key: str,
        records: list[dict[str, Any]],
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> list[dict[str, Any]]:
        """Persist a finished step (records get its `checkpoint_bytes`); the entry appears whole or not at all."""
        with atomic_dir(self.root / key) as tmp:
            if model is not None and tokenizer is not None:
                size = checkpoint_bytes(save_checkpoint(model, tokenizer, tmp / CHECKPOINT))
                records = [{**record, "checkpoint_bytes": size} for record in records]
            write_jsonl(tmp / RECORDS, records)
        return records

    def memo(self, key: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Tensors computed once per key (e.g. importance scores shared by one-shot cells of several rates)."""
        path = self.root / "memo" / f"{key}.safetensors"
        if path.is_file():
            return load_file(path)
        tensors = compute()
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        return tensors
