"""The stages of a cycle that produce numbers: evaluate a model into records, recover it, and report both
(results file + tracker)."""

from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.evaluation.suite import evaluate
from prunesweep.models.params import count_params
from prunesweep.pruning.base import Pruner, PruneResult
from prunesweep.pruning.masks import module_sparsity
from prunesweep.recovery import recover, trained_params
from prunesweep.run.teacher import Teacher
from prunesweep.store.results import ResultsLog
from prunesweep.tracking import Tracker
from prunesweep.util.errors import PrunesweepError
from prunesweep.util.memory import stage_peak

log = logging.getLogger(__name__)
Rows = list[dict[str, Any]]


def evaluate_stage(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: DictConfig,
    stage: dict[str, Any],
) -> Rows:
    """One record per metric of the benchmark, each carrying `stage` fields and the parameter counts."""
    start = time.perf_counter()
    with stage_peak("eval") as memory:
        metrics = evaluate(model, tokenizer, cfg.benchmark, cfg.paths.data_dir, cfg.verbose)
    total, nonzero = count_params(model)
    seconds = time.perf_counter() - start
    fields = {**stage, "total_params": total, "nonzero_params": nonzero, "eval_seconds": seconds, **memory}
    return [{**fields, **metric} for metric in metrics]


def prune_fields(pruned: PruneResult) -> dict[str, Any]:
    return {"prune_seconds": pruned.seconds, **{f"prune_{k}": v for k, v in pruned.details.items()}}


def recover_stage(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: DictConfig,
    pruner: Pruner,
    achieved: float,
    on_loss: Any,
    teacher: Teacher | None = None,
) -> tuple[PreTrainedModel, dict[str, Any]]:
    """Fine-tune the pruned model (distilling from `teacher` with recovery=distill); zeroed weights must stay
    zero through training and the LoRA merge."""
    with stage_peak("recovery") as memory:
        model, recovered = recover(
            model,
            tokenizer,
            cfg.recovery,
            cfg.paths.data_dir,
            after_update=pruner.after_update,
            on_step=on_loss,
            teacher=teacher.model if teacher is not None else None,
        )
    if pruner.kind.zeroes_weights:
        after = module_sparsity(model, list(pruner.cfg.targets))
        if after + 1e-9 < achieved:
            raise PrunesweepError(f"sparsity fell from {achieved:.6f} to {after:.6f} during recovery")
    return model, {
        "recovery_params": trained_params(cfg.recovery),
        **(distill_fields(cfg.recovery.distill, teacher) if teacher is not None else {}),
        "recovery_dataset": recovered.dataset,
        "recovery_train_tokens": recovered.train_tokens,
        "recovery_seconds": recovered.seconds,
        "recovery_steps": recovered.steps,
        "recovery_tokens_per_second": recovered.tokens_per_second,
        "recovery_val_loss_before": recovered.val_loss_before,
        "recovery_val_loss_after": recovered.val_loss_after,
        "recovery_final_train_loss": recovered.train_losses[-1] if recovered.train_losses else None,
        **memory,
    }


def distill_fields(distill: DictConfig, teacher: Teacher) -> dict[str, Any]:
    """What a distilled row learnt from and how."""
    return {
        "distill_alpha": distill.alpha,
        "distill_temperature": distill.temperature,
        "distill_layers": ",".join(str(layer) for layer in distill.layers),
        "distill_hidden_weight": distill.hidden_weight,
        "distill_teacher": teacher.source,
        "distill_teacher_hash": teacher.hash,
    }


class Reporter:
    """Appends a step's records to the cell's results file and logs them to the tracker and the console."""

    def __init__(self, results: ResultsLog, tracker: Tracker) -> None:
        self.results, self.tracker = results, tracker

    def record(self, step: int, rows: Rows, reused: bool) -> None:
        if not rows:
            return
        self.results.add({}, rows)
        for stage in dict.fromkeys(row["stage"] for row in rows):
            self.track(step, stage, [row for row in rows if row["stage"] == stage])

    def track(self, step: int, stage: str, rows: Rows) -> None:
        first = rows[0]
        metrics = {f"{stage}/{r['task']}/{r['metric']}": r["value"] for r in rows}
        metrics |= {k: first[k] for k in ("achieved_sparsity", "nonzero_params", "total_params")}
        metrics["sparsity"] = metrics.pop("achieved_sparsity")
        self.tracker.log_metrics(metrics, step)
        summary = ", ".join(f"{r['task']}/{r['metric']}={r['value']:.4g}" for r in rows)
        log.info("step %d %s sparsity=%.4f: %s", step, stage, first["achieved_sparsity"], summary)

    def loss(self, step: int) -> Any:
        """Per-optimizer-step callback logging the recovery loss curve of `step`."""
        return lambda _i, loss: self.tracker.log_metrics({"recovery/train_loss": loss}, step)
