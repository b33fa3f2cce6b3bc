"""One sweep cell: evaluate dense -> for each schedule step: prune -> [evaluate, recover] -> evaluate -> store.

Finished steps come from the content-addressed `StepStore` when an identical trajectory already produced them
(shared dense baseline, iterative prefixes, re-runs, resumes after a kill). The runner knows the cycle; what a
method does is behind the `Pruner` interface."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from prunesweep.pruning.base import Pruner
from prunesweep.run.cycle import Cycle, expected_records
from prunesweep.run.fingerprint import model_source
from prunesweep.run.inputs import check_writable
from prunesweep.run.stages import Reporter
from prunesweep.run.validate import RunPlan, validate
from prunesweep.store.results import RESULTS_FILE, ResultsLog, identity_hash, read_results, resolved_config
from prunesweep.store.status import STATUS_FILE, STOPPED, read_status, running_status
from prunesweep.tracking import Tracker, make_tracker
from prunesweep.util.atomic import write_json
from prunesweep.util.errors import PrunesweepError

log = logging.getLogger(__name__)
CONFIG_FILE = "config.json"
LOCK_FILE = ".cell.lock"
KEPT_FILES = (RESULTS_FILE, CONFIG_FILE, STATUS_FILE)
# errors of the storage itself (full, over quota, read-only, permission): one line naming the file, not a traceback
STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def run_name(cfg: DictConfig, pruner: Pruner | None) -> str:
    """`<Pruner.label()>-<rate>-<recovery>`, e.g. `sparsegpt.2:4-0.5-none`."""
    return f"{pruner.label() if pruner else cfg.pruner.name}-{cfg.pruner.rate:g}-{cfg.recovery.kind}"


def cell_fields(cfg: DictConfig, plan: RunPlan, output_dir: Path, cell_hash: str) -> dict[str, Any]:
    """Columns shared by every record of a cell; provenance comes from the run's inputs."""
    source, source_hash = model_source(cfg.model, cfg.seed)
    return {
        "run_id": output_dir.name,
        "config_hash": cell_hash,
        "experiment": cfg.experiment_name,
        "model": cfg.model.name,
        "model_source": source,
        "model_hash": source_hash,
        "method": cfg.pruner.name,
        **(plan.pruner.record_fields() if plan.pruner else {}),
        **(calibration_fields(cfg.pruner.calibration) if plan.pruner and plan.pruner.uses_calibration else {}),
        "target_rate": cfg.pruner.rate,
        "schedule": cfg.schedule.kind,
        "recovery": cfg.recovery.kind,
        "seed": cfg.seed,
        **({"recovery_seed": cfg.recovery.seed} if cfg.recovery.kind != "none" else {}),
        "lm_eval_version": plan.inputs["code"]["lm_eval"],
    }


def calibration_fields(calibration: DictConfig) -> dict[str, Any]:
    """How the calibration samples of a row were drawn (they are part of its store key too)."""
    return {
        "calibration_dataset": calibration.dataset,
        "calibration_sampling": str(calibration.sampling),
        "calibration_samples": calibration.n_samples,
        "calibration_seq_len": calibration.seq_len,
        "calibration_seed": calibration.seed,
    }


def run(cfg: DictConfig, output_dir: Path, plan: RunPlan | None = None) -> list[dict[str, Any]]:
    """Execute one cell (its settings validated here unless `plan` is the caller's `validate(cfg)`); returns the
    tidy records also written to `output_dir/results.jsonl`.

    The cell's `status.json` says running / done / failed (with the reason, also for invalid settings)."""
    check_writable(output_dir, "run folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer per cell: an identical cell started meanwhile waits here
        try:
            return _run_cell(cfg, output_dir, plan)
        except Exception as exc:
            code = storage_errno(exc)
            if code is None:
                raise
            where = getattr(exc, "filename", None) or cfg.paths.store_dir
            raise PrunesweepError(
                f"cannot write in {where}: {os.strerror(code)} (free space or fix permissions there, then re-run the "
                "same command: finished steps are kept)"
            ) from None


def storage_errno(exc: BaseException) -> int | None:
    """The errno of a storage failure (full, read-only, no permission), or None. safetensors reports its Rust I/O
    errors only as text (`... Os { code: 28, ... }`), so their code is read from the message."""
    if isinstance(exc, OSError):
        code = exc.errno
    else:
        match = re.search(r"(?:code: |os error )(\d+)", str(exc))
        code = int(match.group(1)) if match else None
    return code if code in STORAGE_ERRORS else None


def _run_cell(cfg: DictConfig, output_dir: Path, plan: RunPlan | None) -> list[dict[str, Any]]:
    status = output_dir / STATUS_FILE
    tracker: Tracker | None = None
    results: ResultsLog | None = None
    cell_hash = None
    try:
        plan = plan or validate(cfg)
        cfg = plan.cfg
        cell_hash = identity_hash(cfg, plan.inputs)
        finished = _finished_records(output_dir, cell_hash, expected_records(cfg, plan))
        if finished is not None:
            log.info("%s: finished earlier, skipped", output_dir)
            return finished
        resolved = resolved_config(cfg)
        _keep_previous_results(output_dir, resolved, cell_hash)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        write_json(output_dir / CONFIG_FILE, resolved)
        results = ResultsLog(output_dir / RESULTS_FILE, cell_fields(cfg, plan, output_dir, cell_hash))
        previous = read_status(output_dir)
        if previous is not None and previous["state"] == STOPPED:
            log.info("%s: its earlier run (pid %s on %s) stopped while running; resumed", output_dir,
                     previous["pid"], previous["host"])  # fmt: skip
        write_json(status, running_status(cell_hash))
        tracker = make_tracker(cfg.logger, output_dir, run_name(cfg, plan.pruner), resolved)
        Cycle(cfg, plan, resolved, output_dir, Reporter(results, tracker)).execute()
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a full disk may refuse the status too
            write_json(status, {"state": "failed", "reason": f"{type(exc).__name__}: {exc}", "config_hash": cell_hash})
        if tracker is not None:
            tracker.finish(failed=True)
        raise
    tracker.log_table("results", results.rows)
    tracker.finish(failed=False)
    write_json(status, {"state": "done", "config_hash": cell_hash})
    return results.rows


def _finished_records(
    output_dir: Path, cell_hash: str, expected: set[tuple[int, str, str]]
) -> list[dict[str, Any]] | None:
    """The records of this folder when it already holds the complete results of the same configuration and
    inputs, else None: status done with the same hash, and a record for every planned step x stage x task. A
    damaged results file is named and rebuilt (from the store) by the run that follows."""
    status, results = output_dir / STATUS_FILE, output_dir / RESULTS_FILE
    if not (status.is_file() and results.is_file()):
        return None
    try:
        recorded = json.loads(status.read_text())
        rows = read_results(results)
    except (OSError, ValueError) as exc:
        log.warning("%s: damaged (%s); the cell is rebuilt from the store", results, exc)
        return None
    if recorded.get("state") != "done" or recorded.get("config_hash") != cell_hash:
        return None
    missing = expected - {(row.get("step"), row.get("stage"), row.get("task")) for row in rows}
    if missing:
        log.warning("%s: %d planned records missing (e.g. %s); the cell is completed", results, len(missing),
                    min(missing))  # fmt: skip
    return None if missing else rows


def _keep_previous_results(output_dir: Path, resolved: dict[str, Any], cell_hash: str) -> None:
    """A cell folder that holds results of another configuration (e.g. after a preset edit) keeps them beside
    the new ones as `results.<old hash>.jsonl` (+ config, status), with one line saying what changed."""
    old_results, old_config = output_dir / RESULTS_FILE, output_dir / CONFIG_FILE
    if not old_results.is_file():
        return
    old_hash = _results_hash(output_dir)
    if old_hash == cell_hash:  # the same cell, interrupted or damaged: its resumed run rewrites the file
        return
    try:
        previous = json.loads(old_config.read_text()) if old_config.is_file() else {}
    except (OSError, ValueError):
        previous = {}
    changed = _changed_keys(previous, resolved) or ["data files or code versions"]
    tag = old_hash or "unknown"
    number = 1
    while any((output_dir / f"{Path(name).stem}.{tag}{Path(name).suffix}").exists() for name in KEPT_FILES):
        number += 1
        tag = f"{old_hash or 'unknown'}-{number}"  # never overwrite results kept earlier
    for name in KEPT_FILES:
        path = output_dir / name
        if path.is_file():
            path.rename(output_dir / f"{path.stem}.{tag}{path.suffix}")
    log.warning(
        "%s: settings changed (%s); previous results kept as results.%s.jsonl",
        output_dir, ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else ""), tag,
    )  # fmt: skip


def _results_hash(output_dir: Path) -> str | None:
    """The config hash of the records in the folder's results file (its records carry it), else the status's."""
    try:
        for line in (output_dir / RESULTS_FILE).read_text().splitlines():
            return json.loads(line)["config_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return json.loads((output_dir / STATUS_FILE).read_text()).get("config_hash")
    except (OSError, ValueError, AttributeError):
        return None


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts, as `key: old -> new`."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {a} -> {b}")
    return changed
