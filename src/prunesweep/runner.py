"""One sweep cell: evaluate dense -> for each schedule step: prune -> [evaluate, recover] -> save -> evaluate.

Finished steps come from the content-addressed `StepStore` when an identical trajectory already produced them
(shared dense baseline, iterative prefixes, re-runs, resumes after a kill)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lm_eval
import torch
from omegaconf import DictConfig, OmegaConf

from prunesweep.atomic import write_json
from prunesweep.checkpoint import load_checkpoint
from prunesweep.data.corpora import calibration_batch
from prunesweep.errors import PrunesweepError
from prunesweep.evaluation.suite import check_benchmark, evaluate
from prunesweep.hashing import content_key
from prunesweep.models import LoadedModel, check_model_config, load_model
from prunesweep.models.loader import resolve_device, resolve_dtype
from prunesweep.pruning.base import PruneContext, Pruner, count_params
from prunesweep.pruning.masks import module_sparsity
from prunesweep.pruning.registry import build_pruner
from prunesweep.recovery import check_recovery, recover
from prunesweep.results import RESULTS_FILE, ResultsLog, config_hash, read_results
from prunesweep.schedule import check_schedule, rates
from prunesweep.store import StepStore, dense_key, trajectory_keys
from prunesweep.tracking import Tracker, make_tracker

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"


@dataclass
class Plan:
    """A validated run: what to prune with and the cumulative rates to visit."""

    pruner: Pruner | None
    rates: list[float]


def validate(cfg: DictConfig) -> Plan:
    """Every check that needs no model: bad values, unknown names and missing files fail here, in one line."""
    pruner = build_pruner(cfg.pruner)
    check_schedule(cfg.schedule)
    check_model_config(cfg.model)
    if not Path(cfg.paths.data_dir).is_dir():
        raise PrunesweepError(f"paths.data_dir {cfg.paths.data_dir!r} does not exist (set PRUNESWEEP_DATA_DIR)")
    check_benchmark(cfg.benchmark, cfg.paths.data_dir)
    check_recovery(cfg.recovery, cfg.paths.data_dir)
    if cfg.threads is not None and cfg.threads < 1:
        raise PrunesweepError(f"threads={cfg.threads} must be >= 1 or null")
    return Plan(pruner, rates(cfg.schedule) if pruner is not None and cfg.schedule.target > 0 else [])


def run_name(cfg: DictConfig) -> str:
    """`<method>-<rate>-<recovery>`, e.g. `llm_pruner.element1-0.2-lora`."""
    method = cfg.pruner.name if cfg.pruner.name != "llm_pruner" else f"llm_pruner.{cfg.pruner.importance}"
    return f"{method}-{cfg.pruner.rate:g}-{cfg.recovery.kind}"


def cell_fields(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Columns shared by every record of a cell."""
    return {
        "run_id": output_dir.name,
        "config_hash": config_hash(cfg),
        "experiment": cfg.experiment_name,
        "model": cfg.model.name,
        "method": cfg.pruner.name,
        "importance": cfg.pruner.importance if cfg.pruner.name == "llm_pruner" else None,
        "target_rate": cfg.pruner.rate,
        "schedule": cfg.schedule.kind,
        "recovery": cfg.recovery.kind,
        "lm_eval_version": lm_eval.__version__,
    }


def run(cfg: DictConfig, output_dir: Path) -> list[dict[str, Any]]:
    """Execute one cell; returns the tidy records also written to `output_dir/results.jsonl`.

    The cell's `status.json` says running / done / failed (with the reason, also for invalid settings)."""
    cfg_hash = config_hash(cfg)
    if _finished(output_dir, cfg_hash):
        log.info("%s: finished earlier, skipped", output_dir)
        return read_results(output_dir / RESULTS_FILE)
    output_dir.mkdir(parents=True, exist_ok=True)
    status = output_dir / STATUS_FILE
    tracker: Tracker | None = None
    results: ResultsLog | None = None
    failed = True
    try:
        plan = validate(cfg)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        write_json(output_dir / "config.json", resolved)
        results = ResultsLog(output_dir / RESULTS_FILE, cell_fields(cfg, output_dir))
        write_json(status, {"state": "running", "config_hash": cfg_hash})
        tracker = make_tracker(cfg.logger, output_dir, run_name(cfg), resolved)
        Cell(cfg, plan, resolved, output_dir, results, tracker).execute()
        failed = False
    except BaseException as exc:
        write_json(status, {"state": "failed", "reason": f"{type(exc).__name__}: {exc}", "config_hash": cfg_hash})
        raise
    finally:
        if tracker is not None:  # W&B runs are always finished, also when the cell fails
            tracker.log_table("results", results.rows)
            tracker.finish(failed=failed)
    write_json(status, {"state": "done", "config_hash": cfg_hash})
    return results.rows


def _finished(output_dir: Path, cfg_hash: str) -> bool:
    """True when this folder already holds the complete results of the same configuration."""
    status = output_dir / STATUS_FILE
    if not (status.is_file() and (output_dir / RESULTS_FILE).is_file()):
        return False
    recorded = json.loads(status.read_text())
    return recorded.get("state") == "done" and recorded.get("config_hash") == cfg_hash


class Cell:
    """The steps of one run, each either reused from the store or computed and stored."""

    def __init__(
        self,
        cfg: DictConfig,
        plan: Plan,
        resolved: dict[str, Any],
        output_dir: Path,
        results: ResultsLog,
        tracker: Tracker,
    ) -> None:
        self.cfg, self.plan, self.output_dir, self.results, self.tracker = cfg, plan, output_dir, results, tracker
        self.store = StepStore(cfg.paths.store_dir)
        self.dense_key = dense_key(resolved)
        self.keys = trajectory_keys(resolved, plan.rates)  # keys[k]: the model after step k (0 = before pruning)
        self.loaded: LoadedModel | None = None
        self.model_step: int | None = None  # which step the in-memory model is at

    def execute(self) -> None:
        """Walk dense + every step; each is reused when stored, else computed under its lock and stored."""
        with self.store.lock(self.dense_key):
            if self.store.is_complete(self.dense_key):
                self._reuse(0, self.dense_key)
            else:
                self._model_at(0)
                self._store_step(0, self.dense_key, self._evaluate(0, "dense", 0.0, self._dense_sparsity(), {}))
        for step in range(1, len(self.plan.rates) + 1):
            with self.store.lock(self.keys[step]):
                if self.store.is_complete(self.keys[step]):
                    self._reuse(step, self.keys[step])
                else:
                    self._model_at(step - 1)
                    self._prune_step(step)
                    self.model_step = step

    # -- reuse -------------------------------------------------------------------------------------------------
    def _reuse(self, step: int, key: str) -> None:
        rows = [{**row, "reused": True, "store_key": key} for row in self.store.records(key)]
        self.results.add({}, rows)
        self._link_checkpoint(step, key)
        log.info("step %d: reused %d records from the store (%s)", step, len(rows), key)
        for stage in dict.fromkeys(row["stage"] for row in rows):
            self._track(step, stage, [row for row in rows if row["stage"] == stage])

    def _link_checkpoint(self, step: int, key: str) -> None:
        target = self.store.checkpoint(key)
        if not target.is_dir():
            return
        link = self.output_dir / "checkpoints" / f"step_{step}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target.resolve(), link, target_is_directory=True)

    # -- compute -----------------------------------------------------------------------------------------------
    @property
    def model(self):
        return self.loaded.model

    def _model_and_tokenizer(self):
        return self.loaded.model, self.loaded.tokenizer

    def _model_at(self, step: int) -> None:
        """Make the in-memory model the one after `step`: 0 = the base model; else that step's stored checkpoint,
        loaded directly (a resumed cell never materialises the base model; provenance comes from the records)."""
        if self.loaded is not None and self.model_step == step:
            return
        start = time.perf_counter()
        if step == 0:
            self.loaded = None  # free the old weights before loading the new ones
            self.loaded = load_model(self.cfg.model, self.cfg.paths.cache_dir, seed=self.cfg.seed)
        else:
            if self.loaded is not None:
                self.loaded.model = None
            device = resolve_device(self.cfg.model.device)
            folder = self.store.checkpoint(self.keys[step])
            model, tokenizer = load_checkpoint(folder, resolve_dtype(self.cfg.model.dtype, device), device)
            stored = self.store.records(self.keys[step])[0]
            self.loaded = LoadedModel(model, tokenizer, stored["model_source"], stored["model_hash"])
        log.info("model after step %d ready (%s) in %.1fs", step, self.loaded.source, time.perf_counter() - start)
        if self.plan.pruner is not None:
            self.plan.pruner.check(self.loaded.model)
        self.model_step = step

    def _dense_sparsity(self) -> float:
        return module_sparsity(self.model, self.cfg.pruner.targets)

    def _context(self, step: int) -> PruneContext:
        calib = self.cfg.pruner.calibration
        _, tokenizer = self._model_and_tokenizer()
        start_key = self.keys[step - 1]  # one-shot cells of every rate share keys[0]

        def memo(name: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            settings = {k: v for k, v in OmegaConf.to_container(self.cfg.pruner, resolve=True).items() if k != "rate"}
            return self.store.memo(content_key({"start": start_key, "pruner": settings, "name": name}), compute)

        return PruneContext(
            tokenizer,
            lambda: calibration_batch(
                tokenizer, calib.dataset, self.cfg.paths.data_dir, calib.n_samples, calib.seq_len, calib.seed
            )[0],
            seed=self.cfg.seed,
            memo=memo,
        )

    def _prune_step(self, step: int) -> None:
        pruner, target = self.plan.pruner, self.plan.rates[step - 1]
        pruned = pruner.prune_to(self.model, target, self._context(step))
        extra: dict[str, Any] = {
            "prune_seconds": pruned.seconds,
            **{f"prune_{k}": v for k, v in pruned.details.items()},
        }
        rows: list[dict[str, Any]] = []
        stage = "pruned"
        if self.cfg.recovery.kind != "none":
            if self.cfg.recovery.eval_before:
                rows += self._evaluate(step, "pruned", target, pruned.achieved, extra)
            extra |= self._recover(step, pruner, pruned.achieved)
            stage = "recovered"
        rows += self._evaluate(step, stage, target, pruned.achieved, extra)
        model, tokenizer = self._model_and_tokenizer()
        self._store_step(step, self.keys[step], rows, model, tokenizer)

    def _recover(self, step: int, pruner: Pruner, achieved: float) -> dict[str, Any]:
        model, tokenizer = self._model_and_tokenizer()
        self.loaded.model, recovered = recover(
            model,
            tokenizer,
            self.cfg.recovery,
            self.cfg.paths.data_dir,
            after_update=pruner.after_update,
            on_step=lambda _i, loss: self.tracker.log_metrics({"recovery/train_loss": loss}, step),
        )
        if not pruner.structural:  # unstructured sparsity must survive training and the LoRA merge exactly
            after = module_sparsity(self.loaded.model, pruner.cfg.targets)
            if after + 1e-9 < achieved:
                raise PrunesweepError(f"sparsity fell from {achieved:.6f} to {after:.6f} during recovery")
        return {
            "recovery_seconds": recovered.seconds,
            "recovery_steps": recovered.steps,
            "recovery_tokens_per_second": recovered.tokens_per_second,
            "recovery_val_loss_before": recovered.val_loss_before,
            "recovery_val_loss_after": recovered.val_loss_after,
            "recovery_final_train_loss": recovered.train_losses[-1] if recovered.train_losses else None,
        }

    def _evaluate(
        self, step: int, stage: str, requested: float, achieved: float, extra: dict[str, Any]
    ) -> list[dict[str, Any]]:
        model, tokenizer = self._model_and_tokenizer()
        start = time.perf_counter()
        metrics = evaluate(model, tokenizer, self.cfg.benchmark, self.cfg.paths.data_dir)
        total, nonzero = count_params(model)
        loaded = self.loaded
        fields = {
            "model_source": loaded.source,
            "model_hash": loaded.source_hash,
            "step": step,
            "stage": stage,
            "requested_sparsity": requested,
            "achieved_sparsity": achieved,
            "total_params": total,
            "nonzero_params": nonzero,
            "eval_seconds": time.perf_counter() - start,
            **extra,
        }
        rows = [{**fields, **metric} for metric in metrics]
        self._track(step, stage, rows)
        return rows

    def _store_step(self, step: int, key: str, rows: list[dict[str, Any]], model=None, tokenizer=None) -> None:
        """Store a finished step. Its checkpoint is always kept: later steps and resumes start from it."""
        rows = self.store.save(key, rows, model, tokenizer)
        self.results.add({}, [{**row, "reused": False, "store_key": key} for row in rows])
        self._link_checkpoint(step, key)

    def _track(self, step: int, stage: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        first = rows[0]
        metrics = {f"{stage}/{r['task']}/{r['metric']}": r["value"] for r in rows}
        metrics |= {
            "sparsity": first["achieved_sparsity"],
            "nonzero_params": first["nonzero_params"],
            "total_params": first["total_params"],
        }
        self.tracker.log_metrics(metrics, step)
        summary = ", ".join(f"{r['task']}/{r['metric']}={r['value']:.4g}" for r in rows)
        log.info("step %d %s sparsity=%.4f: %s", step, stage, first["achieved_sparsity"], summary)
