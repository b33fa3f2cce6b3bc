"""Gather run results (an outputs folder, optionally W&B) into one tidy long DataFrame, one row per measurement."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prunesweep.store.results import RESULTS_FILE, read_results
from prunesweep.store.status import read_status
from prunesweep.util.errors import PrunesweepError

# Per-stage record fields that are reported as metrics of the pseudo-task "efficiency".
EFFICIENCY_TASK = "efficiency"
STAGE_FIELDS = ("total_params", "nonzero_params", "achieved_sparsity", "checkpoint_bytes")
# Pruner options that tell cells of one method apart (a table shows one as a column when its rows differ in it).
# Taken from the records when they carry them, else from the run's config.json (`pruner.<option>`).
DETAIL_KEYS = ("mode", "aggregation", "grouping", "pattern", "calibration_mode")
# Who measured a record: the runner, or lm-eval's command line on a stored checkpoint (prunesweep-eval, lm_eval).
RUNNER = "runner"
# What makes two measurements the same table cell; the dense baseline is one cell per model.
CELL_KEY = ["model", "method", "importance", *DETAIL_KEYS, "schedule", "recovery", "rate", "stage", "evaluator"]
# Settings that only re-draw randomness: runs of one cell that differ in them are repeats, aggregated by the tables
# (mean, std, n); a re-run with the same seeds supersedes the older one.
SEED_KEYS = ["seed", "calibration_seed", "recovery_seed"]
KEY = [*CELL_KEY, *SEED_KEYS, "task", "metric"]
SKIP_DIRS = {"checkpoints", "wandb"}
NOT_SET = "-"
UNNAMED = "unnamed"  # experiment of records that carry no experiment name


@dataclass
class Collection:
    """Every tidy measurement; `superseded` marks those a newer run measured again for the same cell."""

    records: pd.DataFrame

    @property
    def experiments(self) -> list[str]:
        """The experiment names of the collected runs, sorted."""
        return sorted(set(self.records["experiment"]))

    def only(self, experiments: Iterable[str]) -> Collection:
        """The runs of `experiments` alone, deduplicated among themselves."""
        return dedupe(self.records[self.records["experiment"].isin(list(experiments))].drop(columns="superseded"))

    @property
    def data(self) -> pd.DataFrame:
        """One measurement per cell: what the tables show."""
        return self.records[~self.records["superseded"]]

    @property
    def superseded(self) -> int:
        """How many (run, cell) measurements a newer run replaced."""
        return len(self.records.loc[self.records["superseded"], ["run_dir", *CELL_KEY, *SEED_KEYS]].drop_duplicates())


def find_results(root: Path) -> list[Path]:
    """Every `results.jsonl` below `root`, not looking into hidden, checkpoint and W&B folders."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        if RESULTS_FILE in files:
            found.append(Path(folder) / RESULTS_FILE)
    return sorted(found)


def _status(run_dir: Path) -> str:
    """running / done / failed, `stopped` for a run killed while running, `unknown` without a status."""
    status = read_status(run_dir)
    return status.get("state", "unknown") if status is not None else "unknown"


def pruner_details(config: dict) -> dict[str, str]:
    """The DETAIL_KEYS options of a run's resolved config (its `pruner` section)."""
    pruner = config.get("pruner", {})
    return {key: str(pruner[key]) for key in DETAIL_KEYS if pruner.get(key) is not None}


def _pruner_details(run_dir: Path) -> dict[str, str]:
    """The run's DETAIL_KEYS options from its config.json; empty if there is none."""
    config = run_dir / "config.json"
    return pruner_details(json.loads(config.read_text()) if config.is_file() else {})


def load_outputs(root: Path) -> pd.DataFrame:
    """Raw records of every run below `root`, tagged with run_dir, mtime (of results.jsonl) and state."""
    if not root.is_dir():
        raise PrunesweepError(f"outputs folder {str(root)!r} does not exist")
    frames = []
    for path in find_results(root):
        frame = pd.DataFrame(read_results(path))
        for key, value in _pruner_details(path.parent).items():
            frame[key] = frame[key].fillna(value) if key in frame else value
        frame["run_dir"] = str(path.parent.relative_to(root))
        frame["mtime"] = path.stat().st_mtime
        frame["state"] = _status(path.parent)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_wandb(project: str) -> pd.DataFrame:
    """Raw records from the `results` table every run of W&B `project` ("entity/project") logged."""
    try:
        import wandb

        api = wandb.Api(timeout=15)
        frames = []
        with tempfile.TemporaryDirectory() as tmp:
            for run in api.runs(project):
                table = run.summary.get("results")
                if not table or "path" not in table:
                    continue
                with run.file(table["path"]).download(root=tmp, replace=True) as handle:
                    logged = json.load(handle)
                frame = pd.DataFrame(logged["data"], columns=logged["columns"])
                frame["run_dir"] = f"wandb:{'/'.join(run.path)}"
                frame["mtime"] = pd.Timestamp(run.created_at).timestamp()
                frame["state"] = "done" if run.state == "finished" else run.state
                frames.append(frame)
    except Exception as exc:  # offline, no API key, unknown project, missing package: one line, not a traceback
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PrunesweepError(f"--wandb-project {project}: cannot read runs from the W&B API ({reason})") from exc
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _stage_metrics(raw: pd.DataFrame) -> pd.DataFrame:
    """One `efficiency` record per (run, step, stage) and per-stage field (params, sparsity, checkpoint size)."""
    fields = [f for f in STAGE_FIELDS if f in raw]
    if not fields:
        return raw.iloc[0:0]
    per_stage = raw.drop(columns=["task", "metric", "value", "stderr"], errors="ignore")
    firsts = per_stage.groupby(["run_dir", "step", "stage"], sort=False).first().reset_index()
    ids = [c for c in firsts.columns if c not in fields]
    melted = firsts.melt(id_vars=ids, value_vars=fields, var_name="metric", value_name="value")
    return melted.dropna(subset=["value"]).assign(task=EFFICIENCY_TASK)


def _protocol(data: pd.DataFrame) -> pd.Series:
    """How each value was measured, in reference.csv's words: `seq N` (perplexity window, efficiency probe length),
    `N-shot` (lm-eval tasks), NOT_SET for counts."""
    seq = data["seq_len"].map(lambda n: f"seq {int(n)}", na_action="ignore")
    shots = data["num_fewshot"].map(lambda n: f"{int(n)}-shot", na_action="ignore")
    return seq.fillna(shots).fillna(NOT_SET).mask(data["metric"].isin(STAGE_FIELDS), NOT_SET)


def _method_label(data: pd.DataFrame) -> pd.Series:
    """The method's name, with OWL layer ratios named as the papers do: `owl` (OWL + Wanda), `owl+<method>`."""
    if "layer_ratios" not in data:
        return data["method"]
    owl = data["layer_ratios"] == "owl"
    return data["method"].mask(owl, data["method"].map(lambda m: "owl" if m == "wanda" else f"owl+{m}"))


def _seeds(data: pd.DataFrame) -> pd.DataFrame:
    """The SEED_KEYS as strings (NOT_SET where unrecorded), each kept only where it can change the measurement: a
    dense row keeps `seed` for a random-initialised model alone, a pruned row of step 1 (no recovery before it) has
    no recovery seed."""
    seeds = data[SEED_KEYS].apply(lambda c: pd.to_numeric(c).astype("Int64").astype(str).replace("<NA>", NOT_SET))
    dense = data["stage"] == "dense"
    seeds.loc[dense, ["calibration_seed", "recovery_seed"]] = NOT_SET
    seeds.loc[dense & ~data["model_source"].astype(str).str.startswith("random:"), "seed"] = NOT_SET
    seeds.loc[(data["stage"] == "pruned") & (pd.to_numeric(data["step"]) <= 1), "recovery_seed"] = NOT_SET
    return seeds


def tidy(raw: pd.DataFrame) -> pd.DataFrame:
    """Normalise raw records: rate column, dense rows as one baseline per model, per-stage fields as metrics."""
    if raw.empty:
        return pd.DataFrame(columns=[*KEY, "value", "stderr", "protocol", "run_dir", "mtime", "state", "experiment"])
    raw = raw.copy()
    labels = ["importance", *DETAIL_KEYS, "schedule", "recovery"]
    optional = (
        "experiment",
        "stderr",
        "checkpoint_bytes",
        "seq_len",
        "num_fewshot",
        "evaluator",
        "model_source",
        "step",
    )
    for column in (*labels, *SEED_KEYS, *optional):
        if column not in raw:
            raw[column] = None
    raw["evaluator"] = raw["evaluator"].fillna(RUNNER)
    data = pd.concat([_stage_metrics(raw), raw], ignore_index=True)  # logged efficiency records win duplicates
    data["rate"] = data["requested_sparsity"].astype(float).round(4)
    data["method"] = _method_label(data)
    dense = data["stage"] == "dense"
    data.loc[dense, "method"] = "dense"
    data.loc[dense, labels] = NOT_SET
    data.loc[dense, "rate"] = 0.0
    data[labels] = data[labels].fillna(NOT_SET).astype(str)
    data[SEED_KEYS] = _seeds(data)
    data["experiment"] = data["experiment"].fillna(UNNAMED)
    data["value"] = pd.to_numeric(data["value"], errors="coerce")
    data["protocol"] = _protocol(data)
    return data[[*KEY, "value", *(c for c in data.columns if c not in {*KEY, "value"})]]


def dedupe(data: pd.DataFrame) -> Collection:
    """Per cell, the newest run wins (mtime of its results.jsonl, ties broken by run path); the rest are flagged."""
    ordered = data.sort_values(["mtime", "run_dir"])  # a multi-key sort is stable: logged beats derived
    latest = ~ordered.duplicated(KEY, keep="last")
    return Collection(data.assign(superseded=~latest.reindex(data.index)))


def collect(
    root: Path,
    wandb_project: str | None = None,
    experiments: Iterable[str] | None = None,
    extra: pd.DataFrame | None = None,
) -> Collection:
    """Tidy, deduplicated results of every run under `root` (plus W&B `wandb_project`, plus `extra` raw records
    such as lm-eval results of checkpoints), optionally of `experiments`."""
    raw = load_outputs(root)
    if wandb_project:
        raw = pd.concat([raw, load_wandb(wandb_project)], ignore_index=True)
    if extra is not None:
        raw = pd.concat([raw, extra], ignore_index=True)
    data = tidy(raw)
    return dedupe(data[data["experiment"].isin(list(experiments))] if experiments is not None else data)
