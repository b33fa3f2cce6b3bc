"""Tidy results: one record per (run, step, stage, task, metric), rewritten atomically after every stage."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prunesweep.util.atomic import write_jsonl
from prunesweep.util.hashing import content_key

RESULTS_FILE = "results.jsonl"
TRIAL_FILE = "search.json"  # a rate-search trial beside its cell\'s results
# Settings that do not change a cell's numbers: excluded from its identity.
NON_IDENTITY_KEYS = ("paths", "logger", "experiment_name", "threads", "verbose", "search")
# where the weights wait between layers and which stay on the device for evaluation: the same numbers either way
NON_IDENTITY_MODEL_KEYS = ("offload", "max_device_memory")


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain JSON-able data (interpolations resolved, enum choices as their strings)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def identity_settings(resolved: dict[str, Any]) -> dict[str, Any]:
    """The settings of a resolved config that change its numbers."""
    identity = {key: value for key, value in resolved.items() if key not in NON_IDENTITY_KEYS}
    if isinstance(identity.get("model"), dict):
        identity["model"] = {k: v for k, v in identity["model"].items() if k not in NON_IDENTITY_MODEL_KEYS}
    return identity


def identity_hash(cfg: DictConfig, inputs: dict[str, Any]) -> str:
    """Content hash of what determines a cell's results: its settings and the fingerprints of its inputs."""
    return content_key({"config": identity_settings(resolved_config(cfg)), "inputs": inputs}, length=16)


class ResultsLog:
    """Accumulates records for one run and persists them as JSON lines (atomic replace)."""

    def __init__(self, path: Path, cell: dict[str, Any]) -> None:
        self.path = path
        self.cell = cell
        self.rows: list[dict[str, Any]] = []

    def add(self, stage: dict[str, Any], metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append `metrics` tagged with the cell and stage fields (closed choices as their plain strings), then
        save."""
        new = [
            {
                key: value.value if isinstance(value, Enum) else value
                for key, value in {**self.cell, **stage, **metric}.items()
            }
            for metric in metrics
        ]
        self.rows.extend(new)
        write_jsonl(self.path, self.rows)
        return new


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
