"""lm-eval benchmarks on an in-memory model: offline tasks over the shared data files, or lm-eval's hub tasks.

Offline tasks are the YAMLs in `tasks/` (lm-eval's prompts and metrics over our loaders); online, a task name
is lm-eval's hub task of that name (see HUB_NAMES for the ones that differ). Task objects are built once per
(data dir, offline) and reused, so repeated evaluations in one process do not re-index or re-read the data.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import lm_eval
import lm_eval.evaluator
from lm_eval.api.metrics import mean, mean_stderr
from lm_eval.api.task import Task
from lm_eval.loggers.utils import add_env_info, get_commit_from_path
from lm_eval.tasks import TaskManager
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.evaluation.task_lm import TaskLM
from prunesweep.evaluation.tasks import HUB_NAMES, TASKS_DIR
from prunesweep.evaluation.tasks.loaders import DATASETS
from prunesweep.util.hashing import file_sha256

log = logging.getLogger(__name__)
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")

_TASKS: dict[tuple[str | None, str], Task] = {}


def _git_hash_quietly() -> str | None:
    """lm-eval's `get_git_commit_hash` (the working folder's commit, for its results) without git's
    "fatal: not a git repository" on the console: git's stderr bypasses the run's console, whose lines name their
    sweep cell. lm-eval has no option for it, so `simple_evaluate`'s lookup is replaced."""
    return _git_hash_of(os.getcwd())


@cache
def _git_hash_of(folder: str) -> str | None:
    try:
        command = ["git", "describe", "--always"]
        return subprocess.check_output(command, cwd=folder, stderr=subprocess.DEVNULL).strip().decode()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return get_commit_from_path(folder)


def _add_env_info_once(storage: dict[str, Any]) -> None:
    """lm-eval's `add_env_info` (versions and torch's environment report, for its results), worked out once per
    working folder and process: torch's `collect_env` behind it starts about a dozen processes (pip, nvidia-smi,
    lscpu, ...) on every `simple_evaluate` call, that is per task and step, for an environment that does not
    change while the process lives."""
    storage.update(_env_info_of(os.getcwd()))


@cache
def _env_info_of(_folder: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    add_env_info(info)
    return info


lm_eval.evaluator.get_git_commit_hash = _git_hash_quietly
lm_eval.evaluator.add_env_info = _add_env_info_once


def run_tasks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[str],
    data_dir: str,
    offline: bool,
    limit: int | None,
    num_fewshot: int,
    batch_size: int,
    max_length: int | None,
    batch_tokens: int | None = None,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate `model` on `tasks`, one task at a time (one progress bar each); one record per (task, metric).

    Records: task, metric (acc, acc_norm, perplexity, exact_match), value, stderr (lm-eval's mean_stderr of
    the per-example scores; None for perplexity), n_examples, data_file and data_sha256 (the files read, joined
    by "+"; the hub dataset and None online), lm_eval_version, limit, num_fewshot, max_length (the context used:
    `max_length`, or the model's when None), truncated (examples whose input was cut to fit it), seconds.
    """
    data_key = _data_key(data_dir, offline)
    task_objs = _load_tasks(tasks, data_key)
    lm = TaskLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        max_length=max_length,
        verbose=verbose,
    )
    common = {"lm_eval_version": lm_eval.__version__, "limit": limit, "num_fewshot": num_fewshot}
    records = []
    for name, task in task_objs.items():
        task.set_config(key="num_fewshot", value=num_fewshot)
        start = time.perf_counter()
        with lm.task(name) as truncated:
            out = lm_eval.simple_evaluate(
                model=lm,
                tasks=[task],
                task_manager=task_manager(data_key),
                limit=limit,
                bootstrap_iters=0,  # stderr is computed below from the per-example scores
                log_samples=True,
                # Leave the caller's global RNG state alone (lm-eval reseeds random/numpy/torch by default);
                # scoring is deterministic and the few-shot sampler keeps its own seed.
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
            )
        assert out is not None  # None only on non-zero ranks of a distributed run
        task_records = _metric_records(task, out)
        if truncated:
            n = task_records[0]["n_examples"] if task_records else "?"
            log.warning(
                "%s: %d of %s examples truncated to max_length=%d tokens", name, len(truncated), n, lm.max_length
            )
        protocol = {"max_length": lm.max_length, "truncated": len(truncated), "seconds": time.perf_counter() - start}
        records += [
            {"task": name, **r, **_provenance(name, task, data_key), **common, **protocol} for r in task_records
        ]
    return records


def _data_key(data_dir: str, offline: bool) -> str | None:
    """Cache key for the task objects: the resolved data dir offline, None for hub tasks."""
    return str(Path(data_dir).resolve()) if offline else None


@cache
def task_manager(data_key: str | None) -> TaskManager:
    """Our offline tasks over `data_key`, or (None) lm-eval's built-in hub tasks."""
    if data_key is None:
        return TaskManager()
    # Nothing offline needs the hub: tell datasets/transformers/huggingface_hub not to try (honoured by code
    # that reads these variables from here on; a socket-blocked test run showed no network access either way).
    os.environ.update(dict.fromkeys(OFFLINE_ENV, "1"))
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": data_key})


def _load_tasks(names: list[str], data_key: str | None) -> dict[str, Task]:
    """Our task name -> lm-eval Task, built on first use (reads the data) and cached."""
    lm_names = {name: name if data_key else HUB_NAMES.get(name, name) for name in names}
    missing = [n for n in dict.fromkeys(lm_names.values()) if (data_key, n) not in _TASKS]
    if missing:
        built = task_manager(data_key).load(missing)["tasks"]
        _TASKS.update({(data_key, n): built[n] for n in missing})
    return {name: _TASKS[(data_key, lm_name)] for name, lm_name in lm_names.items()}


def _metric_records(task: Task, out: dict[str, Any]) -> list[dict[str, Any]]:
    """metric/value/stderr/n_examples of one task in a simple_evaluate result."""
    lm_name = task.task_name
    samples = out["samples"][lm_name]
    records = []
    for key, value in out["results"][lm_name].items():
        metric, sep, filter_key = key.partition(",")
        if not sep or metric.endswith("_stderr"):
            continue
        scores = [s[metric] for s in samples if s["filter"] == filter_key]
        is_mean = task.aggregation()[metric] is mean
        records.append(
            {
                "metric": metric,
                "value": float(value),
                "stderr": float(mean_stderr(scores)) if is_mean and len(scores) > 1 else None,
                "n_examples": len(scores),
            }
        )
    return records


def _provenance(name: str, task: Task, data_key: str | None) -> dict[str, Any]:
    """The data a task read: file names relative to the data dir + sha256 prefixes, or the hub dataset."""
    if data_key is None:
        dataset = ":".join(filter(None, (task.config.dataset_path, task.config.dataset_name)))
        return {"data_file": dataset, "data_sha256": None}
    files = DATASETS[name].files
    return {
        "data_file": "+".join(files),
        "data_sha256": "+".join(file_sha256(Path(data_key) / f)[:16] for f in files),
    }
