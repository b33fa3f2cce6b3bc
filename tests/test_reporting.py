"""Paper tables from a hand-written outputs tree: pivot cells, duplicates, reference rows, files, CLI without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from prunesweep.paths import project_root
from prunesweep.report_cli import main
from prunesweep.reporting import SPECS, build, collect, load_reference
from prunesweep.reporting.tables import NO_DATA_CELL, display, to_markdown

LLM_PRUNER_TASKS = {("wikitext2", "ppl"): 20.0, ("boolq", "acc"): 0.60, ("hellaswag", "acc_norm"): 0.40}
MAGNITUDE_TASKS = {("lambada", "acc"): 0.30, ("lambada", "perplexity"): 30.0, ("nq_open", "exact_match"): 0.02}
REFERENCE = """source,model,method,importance,rate,stage,task,metric,value,provenance
paper,LLaMA-7B,dense,,0,dense,boolq,acc,73.18,test
paper,LLaMA-7B,llm_pruner,l2,0.2,pruned,boolq,acc,59.8,test
"""


def value(base: float, rate: float, stage: str, shift: float) -> float:
    """A distinct, checkable number per cell: falls with rate, recovery adds 0.05, re-runs add `shift`."""
    return base * (1 - rate) + (0.05 if stage == "recovered" else 0.0) + shift


def write_run(
    folder: Path,
    method: str,
    importance: str | None,
    stages: list[tuple[int, float, str]],
    tasks: dict[tuple[str, str], float],
    shift: float = 0.0,
    mtime: float = 1_000_000.0,
) -> None:
    """One run folder as the runner leaves it: results.jsonl, config.json, status.json."""
    experiment = "gholami_table3" if method == "magnitude" else "llm_pruner_table1"
    run = {"run_id": folder.name, "experiment": experiment, "model": "smollm2_135m", "method": method}
    run |= {"importance": importance, "schedule": "oneshot", "recovery": "lora"}
    rows = []
    for step, rate, stage in stages:
        params = int(1e8 * (1 - rate))
        sizes = {"total_params": params, "nonzero_params": params, "achieved_sparsity": rate * 0.9}
        cell = {**run, **sizes, "step": step, "stage": stage, "requested_sparsity": rate}
        rows += [
            {**cell, "task": task, "metric": metric, "value": value(base, rate, stage, shift), "stderr": 0.01}
            for (task, metric), base in tasks.items()
        ]
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "config.json").write_text("{}")
    (folder / "status.json").write_text(json.dumps({"state": "done"}))
    os.utime(folder / "results.jsonl", (mtime, mtime))


@pytest.fixture()
def outputs(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    sweep = root / "sweeps" / "llm_pruner_table1" / "2024-01-01_00-00-00"
    one_shot = [(0, 0.0, "dense"), (1, 0.2, "pruned"), (1, 0.2, "recovered")]
    write_run(sweep / "0_pruner.importance=l2", "llm_pruner", "l2", one_shot, LLM_PRUNER_TASKS)
    write_run(sweep / "1_pruner.importance=random", "llm_pruner", "random", one_shot, LLM_PRUNER_TASKS)
    write_run(
        sweep / "2_pruner.importance=random,pruner.rate=0.5",
        "llm_pruner",
        "random",
        [(0, 0.0, "dense"), (1, 0.5, "pruned"), (1, 0.5, "recovered")],
        LLM_PRUNER_TASKS,
    )
    # A newer re-run of the l2 cell, and a same-mtime twin that only the run path can order.
    rerun = root / "runs" / "llm_pruner_table1"
    write_run(rerun / "2024-01-02_00-00-00", "llm_pruner", "l2", one_shot, LLM_PRUNER_TASKS, 0.001, 2_000_000.0)
    write_run(rerun / "2024-01-03_a", "llm_pruner", "random", one_shot[1:], LLM_PRUNER_TASKS, 0.002, 3_000_000.0)
    write_run(rerun / "2024-01-03_b", "llm_pruner", "random", one_shot[1:], LLM_PRUNER_TASKS, 0.003, 3_000_000.0)
    iterative = [(0, 0.0, "dense"), (1, 0.1, "pruned"), (2, 0.3, "pruned"), (3, 0.5, "pruned")]
    write_run(root / "runs" / "gholami_table3" / "2024-01-04", "magnitude", None, iterative, MAGNITUDE_TASKS)
    return root


def cell(wide: pd.DataFrame, rate: float, variant: str, stage: str, column: str, source: str = "ours") -> float:
    rows = wide[(wide["rate"] == rate) & (wide["variant"] == variant) & (wide["stage"] == stage)]
    (found,) = rows.loc[rows["source"] == source, column]
    return found


def test_pivot_puts_each_value_in_its_cell_and_newest_duplicate_wins(outputs: Path, tmp_path: Path) -> None:
    (tmp_path / "reference.csv").write_text(REFERENCE)
    collection = collect(outputs)
    grid = build(SPECS["llm_pruner_table1"], collection.data, load_reference(tmp_path / "reference.csv"))
    wide = grid.wide
    assert cell(wide, 0.2, "l2", "pruned", "BoolQ") == pytest.approx(value(0.60, 0.2, "pruned", 0.001))
    assert cell(wide, 0.2, "l2", "recovered", "HellaSwag") == pytest.approx(value(0.40, 0.2, "recovered", 0.001))
    assert cell(wide, 0.2, "random", "recovered", "WikiText2 ↓") == pytest.approx(value(20.0, 0.2, "recovered", 0.003))
    assert cell(wide, 0.5, "random", "pruned", "BoolQ") == pytest.approx(value(0.60, 0.5, "pruned", 0.0))
    assert cell(wide, 0.0, "dense", "dense", "#Params") == 1e8
    assert cell(wide, 0.2, "l2", "pruned", "Achieved sparsity") == pytest.approx(0.18)
    assert len(wide[(wide["source"] == "ours") & (wide["rate"] == 0.2)]) == 4  # l2/random x pruned/recovered
    assert collection.superseded > 0
    # Reference rows sit right after our row of the same cell.
    l2 = wide[(wide["rate"] == 0.2) & (wide["variant"] == "l2") & (wide["stage"] == "pruned")]
    assert list(l2["source"]) == ["ours", "paper"] and l2.index[1] == l2.index[0] + 1
    assert cell(wide, 0.2, "l2", "pruned", "BoolQ", source="paper") == pytest.approx(0.598)
    assert cell(wide, 0.0, "dense", "dense", "BoolQ", source="paper") == pytest.approx(0.7318)
    shown = display(grid)
    assert "59.80" in set(shown["BoolQ"]) and "73.18" in set(shown["BoolQ"])


def test_task_without_offline_data_says_so(outputs: Path) -> None:
    grid = build(SPECS["gholami_table4"], collect(outputs).data, load_reference(Path("missing.csv")))
    shown = display(grid)
    assert set(shown["TriviaQA"]) == {NO_DATA_CELL}
    assert shown["NQ-open"].iloc[-1] == f"{100 * value(0.02, 0.5, 'pruned', 0.0):.2f}"
    assert NO_DATA_CELL in to_markdown(grid)


def test_every_experiment_reference_csv_loads() -> None:
    for name in SPECS:
        ref = load_reference(Path(project_root()) / "experiments" / name / "reference.csv")
        assert ref["value"].notna().all(), name
    table1 = load_reference(Path(project_root()) / "experiments" / "llm_pruner_table1" / "reference.csv")
    dense = table1[(table1["stage"] == "dense") & (table1["task"] == "boolq")]
    assert dense["value"].tolist() == [pytest.approx(0.7318)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys; from prunesweep.report_cli import main; status = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'reporting imported torch'; sys.exit(status)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)


def test_cli_writes_all_tables_and_figures_without_torch(outputs: Path, tmp_path: Path) -> None:
    (tmp_path / "experiments" / "llm_pruner_table1").mkdir(parents=True)
    (tmp_path / "experiments" / "llm_pruner_table1" / "reference.csv").write_text(REFERENCE)
    done = run_cli(str(outputs), "--experiments-dir", str(tmp_path / "experiments"))
    assert done.returncode == 0, done.stderr
    out = outputs / "tables"
    for name in SPECS:
        for suffix in (".md", ".tex", ".csv"):
            assert (out / f"{name}{suffix}").stat().st_size > 0
        assert f"### {SPECS[name].title}" in done.stdout
    assert (out / "llm_pruner_table1" / "boolq.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "gholami_table3" / "lambada_ppl.png").is_file()
    assert not (out / "llm_pruner_table1" / "params.png").exists()  # efficiency is drawn in table 2 only
    assert (out / "llm_pruner_table2" / "achieved_sparsity.png").is_file()
    assert "\\toprule" in (out / "llm_pruner_table1.tex").read_text()
    assert "| 20% | l2 | w/o tune | paper | LLaMA-7B |" in (out / "llm_pruner_table1.md").read_text()
    tidy = pd.read_csv(out / "results_tidy.csv")
    assert tidy["run_dir"].nunique() == 7 and tidy["superseded"].any() and not tidy["superseded"].all()


def test_bad_inputs_fail_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "outputs").mkdir()
    monkeypatch.setitem(sys.modules, "wandb", None)  # as good as offline: the W&B API cannot be used
    assert main([str(tmp_path / "outputs"), "--wandb-project", "me/sweep"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("prunesweep-report: error: --wandb-project me/sweep")
