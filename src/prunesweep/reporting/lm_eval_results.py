"""lm-eval results files of prunesweep checkpoints (`prunesweep-eval ... --output_path`, or stock `lm_eval`) as raw
records beside the runs': the checkpoint's provenance says which run, method and rate it came from."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from prunesweep.evaluation.tasks import HUB_NAMES
from prunesweep.reporting.collect import pruner_details
from prunesweep.store.provenance import read_provenance
from prunesweep.util.errors import PrunesweepError

RESULTS_GLOB = "results_*.json"  # what lm-eval's EvaluationTracker writes below --output_path
EVALUATOR = "lm-eval"
OUR_NAMES = {hub: ours for ours, hub in HUB_NAMES.items()}


def _pretrained(results: dict[str, Any], path: Path) -> str:
    """The checkpoint folder the results were measured on (`pretrained=` of --model_args)."""
    model_args = results.get("config", {}).get("model_args")
    if isinstance(model_args, str):  # older lm-eval: the raw "key=value,..." string
        model_args = dict(item.split("=", 1) for item in model_args.split(",") if "=" in item)
    if not isinstance(model_args, dict) or not model_args.get("pretrained"):
        raise PrunesweepError(f"{path}: not an lm-eval results file (no config.model_args.pretrained)")
    return str(model_args["pretrained"])


def _stderr(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None  # "N/A" when lm-eval did not compute it


def records_of(path: Path) -> list[dict[str, Any]]:
    """One raw record per (task, metric) of an lm-eval results file, tagged with its checkpoint's provenance."""
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PrunesweepError(f"{path}: unreadable lm-eval results ({exc})") from exc
    checkpoint = _pretrained(results, path)
    origin = read_provenance(checkpoint)
    if origin is None:
        raise PrunesweepError(
            f"{path}: checkpoint {checkpoint!r} has no prunesweep provenance (not written by the runner, or a "
            "relative path: run prunesweep-report from where lm-eval ran)"
        )
    base = {
        **origin["record"],
        **pruner_details(origin["config"]),
        "evaluator": EVALUATOR,
        "checkpoint": checkpoint,
        "limit": results["config"].get("limit"),
        "lm_eval_version": results.get("lm_eval_version"),
        "run_dir": f"{EVALUATOR}:{path}",
        "mtime": path.stat().st_mtime,
        "state": "done",
    }
    rows = []
    for task, metrics in results["results"].items():
        for key, value in metrics.items():
            metric, sep, filter_key = key.partition(",")
            if not sep or metric.endswith("_stderr") or not isinstance(value, int | float):
                continue
            rows.append(
                {
                    **base,
                    "task": OUR_NAMES.get(task, task),
                    "metric": metric,
                    "value": float(value),
                    "stderr": _stderr(metrics.get(f"{metric}_stderr,{filter_key}")),
                    "num_fewshot": results.get("n-shot", {}).get(task),
                    "n_examples": results.get("n-samples", {}).get(task, {}).get("effective"),
                }
            )
    return rows


def load_lm_eval_results(folders: Iterable[Path]) -> pd.DataFrame:
    """Raw records of every lm-eval results file below `folders`."""
    rows = []
    for folder in folders:
        if not folder.is_dir():
            raise PrunesweepError(f"--lm-eval-results folder {str(folder)!r} does not exist")
        files = sorted(folder.rglob(RESULTS_GLOB))
        if not files:
            raise PrunesweepError(f"--lm-eval-results {folder}: no lm-eval {RESULTS_GLOB} files below it")
        rows += [row for path in files for row in records_of(path)]
    return pd.DataFrame(rows)
