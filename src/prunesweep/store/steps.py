"""Content-addressed store of finished pruning steps: how sweeps share work and resume.

A step's key hashes everything that shapes the model up to that step (model, pruner settings except the final
rate, recovery, benchmark, seed, the content of the data files read, code versions) plus the cumulative rates
visited so far. So a cell whose rates are a prefix of another's (an iterative run to 0.3 vs one to 0.5), a re-run
of a finished cell, or a killed cell restarted, all find their finished steps here.

Entries are written atomically (records + checkpoint + a checksum manifest in one rename) and verified against
their manifest before reuse: a corrupt or incomplete entry is moved to `.quarantine/` with a warning naming it,
and recomputed. Temp folders left by a killed writer are removed on the next start."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import NonNegativeInt, StringConstraints, ValidationError
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.data.records import Record, first_error
from prunesweep.store.checkpoint import checkpoint_bytes, save_checkpoint
from prunesweep.store.results import identity_settings, read_results
from prunesweep.util.atomic import atomic_dir, atomic_path, write_json, write_jsonl
from prunesweep.util.hashing import content_key, file_sha256

log = logging.getLogger(__name__)

RECORDS = "records.jsonl"
CHECKPOINT = "checkpoint"
MANIFEST = "manifest.json"  # {relative path: {"bytes": n, "sha256": hex}} of every other file of the entry
QUARANTINE = ".quarantine"


def dense_key(resolved: dict[str, Any], inputs: dict[str, Any]) -> str:
    """The dense baseline depends only on the model (settings and weights), the benchmark (settings and data), the
    seed and the code."""
    identity = {key: resolved[key] for key in ("model", "benchmark", "seed")}
    prints = {key: inputs[key] for key in ("model", "code")}
    return content_key({"dense": identity, "benchmark_data": inputs["benchmark"], **prints})


def trajectory_keys(resolved: dict[str, Any], inputs: dict[str, Any], rates: list[float]) -> list[str]:
    """Keys of the model before any step (index 0) and after each step of the trajectory `rates`.

    The final rate and the schedule kind are not part of a key: only the rates actually visited are."""
    trajectory = {key: value for key, value in identity_settings(resolved).items() if key != "schedule"}
    trajectory["pruner"] = {key: value for key, value in resolved["pruner"].items() if key != "rate"}
    trajectory["inputs"] = inputs
    return [
        content_key({"trajectory": trajectory, "rates": [round(r, 8) for r in rates[:k]]})
        for k in range(len(rates) + 1)
    ]


class CorruptEntry(Exception):
    """A store entry whose files do not match its manifest (the message names the file)."""


class StepStore:
    """Folder of `<key>/` entries (records, checkpoint, manifest) and `memo/<key>.safetensors` tensors."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.remove_stale_temps()

    # -- locking and housekeeping --------------------------------------------------------------------------------
    @contextmanager
    def lock(self, key: str, blocking: bool = True) -> Iterator[bool]:
        """Exclusive per-key lock, so parallel cells (joblib, submitit) compute a shared step only once.
        Non-blocking: yields False (and holds nothing) when another process has it."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True

    def remove_stale_temps(self) -> None:
        """Delete `.<key>*.tmp` leftovers of killed writers; a temp whose key is locked is being written now."""
        if not self.root.is_dir():
            return
        for tmp in [*self.root.glob(".*.tmp"), *(self.root / "memo").glob(".*.tmp")]:
            key = tmp.name[1:].split(".", 1)[0]
            with self.lock(key if tmp.parent == self.root else f"memo-{key}", blocking=False) as free:
                if free:
                    log.info("store: removing %s left by an interrupted write", tmp)
                    shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink(missing_ok=True)

    def quarantine(self, path: Path, reason: str) -> None:
        """Move a bad entry (folder or file) aside, so it is recomputed; it is kept for inspection."""
        target = self.root / QUARANTINE / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}"
        target.parent.mkdir(parents=True, exist_ok=True)
        log.warning("store: %s is corrupt (%s): moved to %s and recomputed", path, reason, target)
        path.rename(target)

    # -- step entries --------------------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        """True if an entry exists for `key` (not verified: `is_complete` does that before reuse)."""
        return (self.root / key).exists()

    def is_complete(self, key: str) -> bool:
        """True if the entry exists and every file matches its manifest; a bad entry is quarantined."""
        entry = self.root / key
        if not entry.exists():
            return False
        try:
            verify_manifest(entry)
            self.records(key)
        except CorruptEntry as exc:
            self.quarantine(entry, str(exc))
            return False
        return True

    def records(self, key: str) -> list[dict[str, Any]]:
        path = self.root / key / RECORDS
        try:
            rows = read_results(path)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptEntry(f"{path}: unreadable ({exc})") from exc
        if not rows:
            raise CorruptEntry(f"{path}: no records")
        return rows

    def checkpoint(self, key: str) -> Path:
        return self.root / key / CHECKPOINT

    def save(
        self,
        key: str,
        records: list[dict[str, Any]],
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Persist a finished step (records get its `checkpoint_bytes`; its checkpoint the `provenance`); the entry
        appears whole or not at all."""
        with atomic_dir(self.root / key) as tmp:
            if model is not None and tokenizer is not None:
                size = checkpoint_bytes(save_checkpoint(model, tokenizer, tmp / CHECKPOINT, provenance))
                records = [{**record, "checkpoint_bytes": size} for record in records]
            write_jsonl(tmp / RECORDS, records)
            write_json(tmp / MANIFEST, manifest_of(tmp))
        return records

    # -- memoised tensors ----------------------------------------------------------------------------------------
    def memo(self, key: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Tensors computed once per key (e.g. importance scores shared by one-shot cells of several rates).

        Under the key's lock: parallel cells needing the same tensors wait for one computation."""
        path = self.root / "memo" / f"{key}.safetensors"
        checksum = path.with_suffix(".sha256")
        with self.lock(f"memo-{key}"):
            if path.is_file():
                if checksum.is_file() and checksum.read_text().strip() == file_sha256(path):
                    return load_file(path)
                self.quarantine(path, "checksum mismatch" if checksum.is_file() else "no checksum")
                checksum.unlink(missing_ok=True)
            tensors = compute()
            with atomic_path(path) as tmp:
                save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp))
                digest = file_sha256(tmp)
            with atomic_path(checksum) as tmp:
                tmp.write_text(digest + "\n")
        return tensors


class ManifestEntry(Record):
    bytes: NonNegativeInt
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def entry_files(folder: Path) -> list[Path]:
    """Every file below `folder` but the manifest."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def manifest_of(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file below `folder` (the manifest itself excluded)."""
    return {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in entry_files(folder)
    }


def verify_manifest(entry: Path) -> None:
    """Raise CorruptEntry naming the first defect: a missing or malformed manifest, one that does not list exactly
    the entry's files (records always), or a file missing, resized or altered."""
    manifest_path = entry / MANIFEST
    try:
        expected = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise CorruptEntry(f"{manifest_path} missing (incomplete entry, or written by an older prunesweep)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CorruptEntry(f"{manifest_path}: unreadable ({exc})") from exc
    _check_listing(entry, expected)
    for rel, want in expected.items():
        path = entry / rel
        try:
            size = path.stat().st_size
        except OSError as exc:
            missing = exc.errno == errno.ENOENT
            raise CorruptEntry(f"{path} {'missing' if missing else f'unreadable ({exc})'}") from exc
        if not path.is_file():
            raise CorruptEntry(f"{path} is not a file")
        if size != want["bytes"]:
            raise CorruptEntry(f"{path} has {size} bytes, {want['bytes']} were stored")
        if file_sha256(path) != want["sha256"]:
            raise CorruptEntry(f"{path} content changed since it was stored (sha256 mismatch)")


def _check_listing(entry: Path, expected: Any) -> None:
    """The manifest maps each file of the entry (a relative path inside it) to a well-formed size and sha256."""
    manifest_path = entry / MANIFEST
    if not isinstance(expected, dict) or RECORDS not in expected:
        raise CorruptEntry(f"{manifest_path} does not list {RECORDS}")
    root = entry.resolve()
    for rel, want in expected.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not (root / rel).resolve().is_relative_to(root):
            raise CorruptEntry(f"{manifest_path}: {rel!r} is not a path inside the entry")
        try:
            ManifestEntry.model_validate(want)
        except ValidationError as exc:
            raise CorruptEntry("{}: {!r}: field {!r}: {}".format(manifest_path, rel, *first_error(exc))) from None
    unlisted = [str(p.relative_to(entry)) for p in entry_files(entry) if str(p.relative_to(entry)) not in expected]
    if unlisted:
        raise CorruptEntry(f"{entry / unlisted[0]} is not listed in {manifest_path}")
