"""Which model is in memory during a cell: the base model (step 0) or a stored step's checkpoint."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.models.loader import load_model, place, resolve_device, resolve_dtype
from prunesweep.run.fingerprint import model_source
from prunesweep.run.teacher import Teacher, load_teacher, teacher_model_config
from prunesweep.store.checkpoint import load_checkpoint
from prunesweep.util.console import bar

log = logging.getLogger(__name__)


class ModelState:
    """Loads the model a step starts from, at most once per step; a resumed cell loads the stored checkpoint
    directly and never materialises the base model."""

    def __init__(self, cfg: DictConfig, checkpoint_of: list[Path]) -> None:
        self.cfg = cfg
        self.checkpoint_of = checkpoint_of  # checkpoint_of[k]: the stored checkpoint folder after step k (k >= 1)
        self.model: PreTrainedModel | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.step: int | None = None
        self._teacher: Teacher | None = None

    def at(self, step: int) -> PreTrainedModel:
        """Make the in-memory model the one after `step` (0 = the base model) and return it."""
        if self.model is not None and self.step == step:
            return self.model
        start = time.perf_counter()
        self.model = None  # free the old weights before loading the new ones
        with bar(total=1, desc=f"load model (step {step})", bar_format="{desc}: {elapsed}") as progress:
            if step == 0:
                loaded = load_model(self.cfg.model, self.cfg.paths.cache_dir, seed=self.cfg.seed)
                self.model, self.tokenizer = loaded.model, loaded.tokenizer
            else:
                dtype = resolve_dtype(self.cfg.model.dtype, resolve_device(self.cfg.model.device))
                self.model, self.tokenizer = load_checkpoint(self.checkpoint_of[step], dtype, "cpu")
                place(self.model, self.cfg.model, self.cfg.paths.cache_dir)
            progress.update()
        log.info("model after step %d ready in %.1fs", step, time.perf_counter() - start)
        self.step = step
        return self.model

    def advanced(self, step: int) -> None:
        """The in-memory model was pruned (and recovered) in place: it is now the model after `step`."""
        self.step = step

    def teacher(self) -> Teacher:
        """The frozen teacher of recovery=distill, loaded once per cell (after the model it teaches)."""
        if self._teacher is None:
            source = model_source(teacher_model_config(self.cfg), self.cfg.seed)
            with bar(total=1, desc="load teacher", bar_format="{desc}: {elapsed}") as progress:
                self._teacher = load_teacher(self.cfg, self.tokenizer, source)
                progress.update()
        return self._teacher
