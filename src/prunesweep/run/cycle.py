"""The prune -> recover -> evaluate -> record cycle of one cell; each step reused from the store or computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from prunesweep.data.corpora import calibration_batch
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.masks import module_sparsity
from prunesweep.run.fit import check_fits
from prunesweep.run.model_state import ModelState
from prunesweep.run.stages import Reporter, evaluate_stage, prune_fields, recover_stage
from prunesweep.run.teacher import distils
from prunesweep.run.trajectory import Trajectory
from prunesweep.run.validate import RunPlan
from prunesweep.store.provenance import Origin
from prunesweep.store.results import resolved_config
from prunesweep.store.steps import StepStore, dense_key, trajectory_keys
from prunesweep.util.hashing import content_key
from prunesweep.util.memory import stage_peak


class Cycle:
    """The prune -> recover -> evaluate -> record cycle of one cell, each step reused from the store or computed."""

    def __init__(self, cfg: DictConfig, plan: RunPlan, resolved: dict, output_dir: Path, reporter: Reporter) -> None:
        self.cfg, self.plan, self.reporter = cfg, plan, reporter
        store = StepStore(cfg.paths.store_dir)
        keys = trajectory_keys(resolved, plan.inputs, plan.rates)  # keys[k]: the model after step k
        origin = Origin(output_dir, reporter.results.cell, resolved)
        self.steps = Trajectory(store, [dense_key(resolved, plan.inputs), *keys[1:]], origin)
        self.models = ModelState(cfg, [self.steps.checkpoint(k) for k in range(len(keys))])
        self.store, self.keys = store, keys  # memo tensors of step k are keyed by its starting model, keys[k - 1]

    def execute(self) -> None:
        """Dense evaluation, then every step of the schedule; a run that does not fit the model or a method that
        cannot prune it says so before the dense evaluation (unless its first step is stored already)."""
        if not self.plan.fit_checked and not self.store.has(self.steps.keys[0]):
            check_fits(self.cfg, self.plan.pruner, self.plan.rates, self.models.at(0).config)
        if self.plan.rates and not self.store.has(self.steps.keys[1]):
            self.plan.pruner.check(self.models.at(0))
        self.steps.run(0, self.dense, self.reporter.record)
        for step, target in enumerate(self.plan.rates, start=1):
            self.steps.run(step, lambda step=step, target=target: self.prune_step(step, target), self.reporter.record)

    def dense(self):
        with stage_peak("load") as load:
            model = self.models.at(0)
        sparsity = module_sparsity(model, list(self.cfg.pruner.targets))
        stage = {"step": 0, "stage": "dense", "requested_sparsity": 0.0, "achieved_sparsity": sparsity, **load}
        return evaluate_stage(model, self.models.tokenizer, self.cfg, stage), None, None

    def prune_step(self, step: int, target: float):
        """prune -> [evaluate w/o tune -> recover] -> evaluate; returns the records and the model to store."""
        with stage_peak("load") as load:
            model = self.models.at(step - 1)
        tokenizer, pruner = self.models.tokenizer, self.plan.pruner
        pruner.check(model)
        with stage_peak("prune") as memory:
            pruned = pruner.prune_to(model, target, self.context(step))
        stage = {"step": step, "requested_sparsity": target, "achieved_sparsity": pruned.achieved}
        extra = prune_fields(pruned) | memory | load
        rows: list[dict[str, Any]] = []
        if self.cfg.recovery.kind != "none":
            if self.cfg.recovery.eval_before:
                rows += evaluate_stage(model, tokenizer, self.cfg, {**stage, "stage": "pruned", **extra})
            teacher = self.models.teacher() if distils(self.cfg) else None
            model, recovered = recover_stage(
                model, tokenizer, self.cfg, pruner, pruned.achieved, self.reporter.loss(step), teacher
            )
            self.models.model = model
            extra |= recovered
        final = "recovered" if self.cfg.recovery.kind != "none" else "pruned"
        rows += evaluate_stage(model, tokenizer, self.cfg, {**stage, "stage": final, **extra})
        self.models.advanced(step)
        return rows, model, tokenizer

    def context(self, step: int) -> PruneContext:
        calib, tokenizer = self.cfg.pruner.calibration, self.models.tokenizer
        settings = {k: v for k, v in resolved_config(self.cfg.pruner).items() if k != "rate"}
        start_key = self.keys[step - 1]  # one-shot cells of every rate share keys[0]

        def memo(name: str, compute):
            key = content_key({"start": start_key, "pruner": settings, "inputs": self.plan.inputs, "name": name})
            return self.store.memo(key, compute)

        return PruneContext(
            tokenizer,
            lambda: calibration_batch(
                tokenizer,
                calib.dataset,
                self.cfg.paths.data_dir,
                calib.n_samples,
                calib.seq_len,
                calib.seed,
                calib.sampling,
            )[0],
            seed=self.cfg.seed,
            memo=memo,
        )


def expected_records(cfg: DictConfig, plan: RunPlan) -> set[tuple[int, str, str]]:
    """(step, stage, task) of every record a finished cell holds: the dense step, then each step's stages."""
    tasks = [*cfg.benchmark.perplexity, *cfg.benchmark.tasks, *(["efficiency"] if cfg.benchmark.efficiency else [])]
    tuned = cfg.recovery.kind != "none"
    stages = (["pruned"] if tuned and cfg.recovery.eval_before else []) + ["recovered" if tuned else "pruned"]
    steps = [(0, "dense")] + [(k, stage) for k in range(1, len(plan.rates) + 1) for stage in stages]
    return {(step, stage, task) for step, stage in steps for task in tasks}
