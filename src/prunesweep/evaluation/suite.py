"""A benchmark suite = paper-style perplexities + lm-eval zero-shot tasks, as tidy metric records."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.config.schema import BenchmarkConfig
from prunesweep.data.corpora import evaluation_text
from prunesweep.evaluation.efficiency import efficiency_stats
from prunesweep.evaluation.harness import run_tasks
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.dispatch import on_compute_device
from prunesweep.store.checkpoint import save_checkpoint


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: BenchmarkConfig,
    data_dir: str,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """Run the suite; every record carries its protocol (data file hash, seq_len, limit, truncated, ...).
    `verbose`: lm-eval's own progress bars too. Perplexities and tasks run on the compute device, an offloaded
    model's included (`on_compute_device`); efficiency measures a saved copy of the weights where they are."""
    with on_compute_device(model):
        perplexities = [_perplexity_record(model, tokenizer, cfg, name, data_dir) for name in cfg.perplexity]
        tasks: list[dict[str, Any]] = []
        if cfg.tasks:
            tasks = run_tasks(
                model,
                tokenizer,
                list(cfg.tasks),
                data_dir,
                offline=cfg.offline,
                limit=cfg.limit,
                num_fewshot=cfg.num_fewshot,
                batch_size=cfg.batch_size,
                batch_tokens=cfg.batch_tokens,
                max_length=cfg.max_length,
                verbose=verbose,
            )
    efficiency = _efficiency_records(model, tokenizer) if cfg.efficiency else []
    return [*perplexities, *efficiency, *tasks]


def _perplexity_record(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: BenchmarkConfig, name: str, data_dir: str
) -> dict[str, Any]:
    start = time.perf_counter()
    text, corpus = evaluation_text(name, data_dir)
    value = perplexity(model, tokenizer, text, cfg.ppl_seq_len, cfg.ppl_max_tokens, cfg.ppl_batch_size)
    return {
        "task": name,
        "metric": "ppl",
        "value": value,
        "stderr": None,
        "seq_len": cfg.ppl_seq_len,
        "limit": cfg.ppl_max_tokens,
        "data_file": str(corpus.path.relative_to(corpus.path.parents[1])),
        "data_sha256": corpus.sha256[:16],
        "seconds": time.perf_counter() - start,
    }


def _efficiency_records(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
    """Table-2 statistics; peak memory is measured on a temporary checkpoint loaded in a fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prunesweep-efficiency-") as folder:
        stats = efficiency_stats(model, save_checkpoint(model, tokenizer, Path(folder) / "model"))
    tokens = stats.pop("probe_tokens")
    elapsed = time.perf_counter() - start
    return [
        {"task": "efficiency", "metric": name, "value": value, "stderr": None, "seq_len": tokens, "seconds": elapsed}
        for name, value in stats.items()
    ]
