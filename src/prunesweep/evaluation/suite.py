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
from prunesweep.store.checkpoint import save_checkpoint


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: BenchmarkConfig,
    data_dir: str,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """Run the suite; every record carries its protocol (data file hash, seq_len, limit, truncated, ...).
    `verbose`: lm-eval's own progress bars too."""
    records: list[dict[str, Any]] = []
    for name in cfg.perplexity:
        start = time.perf_counter()
        text, corpus = evaluation_text(name, data_dir)
        value = perplexity(model, tokenizer, text, cfg.ppl_seq_len, cfg.ppl_max_tokens, cfg.ppl_batch_size)
        records.append(
            {
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
        )
    if cfg.efficiency:
        records.extend(_efficiency_records(model, tokenizer))
    if cfg.tasks:
        records += run_tasks(
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
    return records


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
