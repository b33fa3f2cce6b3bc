"""Optuna rate search (hydra/sweeper=rate_search): trial scoring, the CLI study on the tiny model (seeded sampler),
reuse of repeated rates through the store, the search table in prunesweep-report, bad settings in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from prunesweep.cli.report import main as report_main
from prunesweep.config.schema import check_config
from prunesweep.reporting.studies import load_studies
from prunesweep.run.rate_search import check_search, score
from prunesweep.store.results import RESULTS_FILE, TRIAL_FILE, read_results
from prunesweep.util.errors import PrunesweepError
from prunesweep.util.memory import PEAK_FIELDS
from tests.compose import compose_config

VOLATILE = {"run_id", "seconds", "eval_seconds", "prune_seconds", "reused", "store_key", "config_hash"}


def rows(dense: float, *finals: tuple[str, float], task: str = "piqa", metric: str = "acc") -> list[dict]:
    """Records of a one-step cell: dense, then the final step's stages in order."""
    found = [{"step": 0, "stage": "dense", "task": task, "metric": metric, "value": dense, "reused": True}]
    found += [{"step": 1, "stage": s, "task": task, "metric": metric, "value": v, "reused": False} for s, v in finals]
    return found


def budget(**values) -> OmegaConf:
    return OmegaConf.create({"task": "piqa", "metric": "acc", "max_drop": 0.02, **values})


def test_accuracy_is_budgeted_by_drop_perplexity_by_ratio_and_the_tuned_stage_counts() -> None:
    within = score(rows(0.70, ("pruned", 0.60), ("recovered", 0.69)), budget(), rate=0.5)
    assert within["value"] == 0.69 and within["feasible"] and within["objective"] == 0.5
    over = score(rows(0.70, ("pruned", 0.65)), budget(), rate=0.5)
    assert not over["feasible"] and over["objective"] == pytest.approx(-(0.05 - 0.02))
    ppl = budget(task="wikitext2", metric="ppl", max_drop=0.1)
    assert score(rows(20.0, ("pruned", 21.0), task="wikitext2", metric="ppl"), ppl, rate=0.3)["feasible"]
    worse = score(rows(20.0, ("pruned", 30.0), task="wikitext2", metric="ppl"), ppl, rate=0.3)
    assert worse["drop"] == pytest.approx(0.5) and worse["objective"] == pytest.approx(-0.4)
    nan = score(rows(20.0, ("pruned", float("nan")), task="wikitext2", metric="ppl"), ppl, rate=0.3)
    assert not nan["feasible"] and nan["objective"] < -1000
    with pytest.raises(PrunesweepError, match="piqa/acc_norm is not in the cell's records"):
        score(rows(0.7, ("pruned", 0.6)), budget(metric="acc_norm"), rate=0.5)


def test_search_settings_the_benchmark_cannot_measure_fail() -> None:
    bench = OmegaConf.create({"name": "smoke", "perplexity": ["wikitext2"], "tasks": ["piqa"]})
    check_search(budget(), bench)
    for bad, message in [
        (budget(task="boolq"), "not measured by benchmark 'smoke'"),
        (budget(task="wikitext2", metric="acc"), "reports metric 'ppl'"),
    ]:
        with pytest.raises(PrunesweepError, match=message):
            check_search(bad, bench)
    with pytest.raises(PrunesweepError, match="must be >= 0"):  # a range, checked with every other field
        check_config(compose_config(["experiment=smoke", "search.max_drop=-0.1"]))


def search_cli(tmp: Path, data_dir: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "prunesweep", "-m", "experiment=smoke", "hydra/sweeper=rate_search",
               f"paths.root_dir={tmp}", f"paths.data_dir={data_dir}", "threads=1", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_seeded_search_on_tiny_model_picks_a_rate_within_budget_and_reuses_repeated_rates(tmp_path, data_dir):
    # 3 trials over 2 rates: some rate is proposed twice, and its second trial must come from the store
    done = search_cli(
        tmp_path,
        data_dir,
        "schedule=oneshot",
        "benchmark.perplexity=[]",
        "pruner.rate=choice(0.4,0.8)",
        "hydra.sweeper.n_trials=3",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    study = tmp_path / "outputs" / "sweeps" / "smoke" / "rate_search-piqa-acc_norm-0.02-seed0"
    trials = sorted((json.loads(p.read_text()) for p in study.glob(f"*/{TRIAL_FILE}")), key=lambda t: t["trial"])
    assert [t["trial"] for t in trials] == [0, 1, 2]
    for t in trials:
        assert t["feasible"] == (t["drop"] <= 0.02)
        assert t["objective"] == t["rate"] if t["feasible"] else t["objective"] < 0
    feasible = [t["rate"] for t in trials if t["feasible"]]
    best = OmegaConf.load(study / "optimization_results.yaml")
    assert best.best_value == (max(feasible) if feasible else max(t["objective"] for t in trials))

    first, repeat = next((a, b) for i, a in enumerate(trials) for b in trials[i + 1 :] if a["rate"] == b["rate"])
    assert repeat["reused"] and not first["reused"]
    cells = {t["trial"]: next(study.glob(f"{t['trial']}_*")) for t in (first, repeat)}

    def stable(trial: dict) -> list[str]:
        records = read_results(cells[trial["trial"]] / RESULTS_FILE)
        return sorted(
            json.dumps(
                {k: v for k, v in r.items() if k not in VOLATILE and not k.endswith(PEAK_FIELDS)}, sort_keys=True
            )
            for r in records
        )

    assert stable(first) == stable(repeat)

    (found,) = load_studies(tmp_path / "outputs")
    assert found.picked == (max(feasible) if feasible else None)
    assert list(found.display()["Picked"]).count("✓") == (1 if feasible else 0)
    assert report_main([str(tmp_path / "outputs"), "--html", str(tmp_path / "report.html")]) == 0
    assert f'<section id="{found.name}"><h2>Rate search' in (tmp_path / "report.html").read_text()
    table = (tmp_path / "outputs" / "tables" / f"search_{found.name.replace('/', '_')}.md").read_text()
    rates, reused = len({t["rate"] for t in trials}), sum(t["reused"] for t in trials)
    assert table.count("| piqa/acc_norm |") == 3
    assert f"3 trials, {rates} distinct rates; {reused} trials took every step from the store" in table


def test_a_search_on_an_unmeasured_task_stops_in_one_line(tmp_path, data_dir):
    failed = search_cli(tmp_path, data_dir, "search.task=boolq")
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1].startswith("prunesweep: error: search.task='boolq' is not measured")
    assert not list((tmp_path / "outputs").rglob(RESULTS_FILE))
