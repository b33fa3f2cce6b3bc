"""Rate searches (Optuna studies) below an outputs folder: every trial's `search.json` beside its cell's results,
one table per study folder with the rate it picks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from prunesweep.reporting.collect import find_results
from prunesweep.store.results import TRIAL_FILE

OPTUNA_RESULTS = "optimization_results.yaml"  # the Optuna sweeper's best parameters, in the study folder


@dataclass
class Study:
    """One study folder's trials (in trial order) and what they add up to."""

    name: str
    trials: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Rate search {self.name}"

    @property
    def picked(self) -> float | None:
        """The highest rate among the feasible trials (what the objective rewards), or None."""
        feasible = self.trials[self.trials["feasible"]]
        return float(feasible["rate"].max()) if not feasible.empty else None

    @property
    def best(self) -> int | None:
        """Row of the first trial at the picked rate (Optuna's best trial), or None."""
        hits = self.trials.index[self.trials["feasible"] & (self.trials["rate"] == self.picked)]
        return int(hits[0]) if len(hits) else None

    def display(self) -> pd.DataFrame:
        """The trials as printed: one row per trial, the picked one marked."""
        t = self.trials
        return pd.DataFrame(
            {
                "Trial": t["trial"],
                "Rate": t["rate"].map(lambda r: f"{r:g}"),
                "Measure": t["task"] + "/" + t["metric"],
                "Dense": t["dense"].map(lambda v: f"{v:.4g}"),
                "Value": t["value"].map(lambda v: f"{v:.4g}"),
                "Drop": t["drop"].map(lambda v: f"{v:.4g}"),
                "Budget": t["max_drop"].map(lambda v: f"{v:g}"),
                "Feasible": t["feasible"].map({True: "yes", False: "no"}),
                "From store": t["reused"].map({True: "yes", False: "no"}),
                "Picked": ["✓" if row == self.best else "" for row in t.index],
            }
        )


def _notes(folder: Path, trials: pd.DataFrame, picked: float | None) -> list[str]:
    notes = [
        f"{len(trials)} trials, {trials['rate'].nunique()} distinct rates; "
        f"{int(trials['reused'].sum())} trials took every step from the store.",
        f"Picked rate: {picked:g} (highest rate within the budget)."
        if picked is not None
        else "No trial was within the budget.",
    ]
    best = folder / OPTUNA_RESULTS
    if best.is_file():
        params = OmegaConf.to_container(OmegaConf.load(best)).get("best_params", {})
        notes.append(f"Optuna's best ({OPTUNA_RESULTS}): {', '.join(f'{k}={v:g}' for k, v in params.items())}.")
    return notes


def load_studies(root: Path, experiments: Iterable[str] | None = None) -> list[Study]:
    """Every study below `root` (a folder whose cells hold trial files), optionally only of `experiments`."""
    folders: dict[Path, list[dict]] = {}
    for results in find_results(root):
        trial = results.parent / TRIAL_FILE
        if trial.is_file():
            folders.setdefault(results.parent.parent, []).append(json.loads(trial.read_text()))
    studies = []
    for folder, found in sorted(folders.items()):
        trials = pd.DataFrame(found).sort_values("trial", ignore_index=True)
        if experiments is not None and not set(trials["experiment"]) & set(experiments):
            continue
        study = Study(str(folder.relative_to(root)), trials)
        study.notes = _notes(folder, trials, study.picked)
        studies.append(study)
    return studies
