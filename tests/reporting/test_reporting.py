"""Paper tables from a hand-written outputs tree: pivot cells, duplicates, reference rows, own tables per experiment,
figures, the HTML page, CLI without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from prunesweep.cli.report import grids, main
from prunesweep.config.paths import experiments_dir
from prunesweep.reporting import build, collect, load_reference, load_specs
from prunesweep.reporting.collect import dedupe, tidy
from prunesweep.reporting.figures import render
from prunesweep.reporting.tables import MISSING_CELL, NO_DATA_CELL, NOT_STATED, display, to_markdown, within_noise
from prunesweep.util.errors import PrunesweepError

EXPERIMENTS_DIR = experiments_dir()
SPECS = load_specs(EXPERIMENTS_DIR)
PPL_METRICS = {"ppl", "perplexity"}

LLM_PRUNER_TASKS = {("wikitext2", "ppl"): 20.0, ("boolq", "acc"): 0.60, ("hellaswag", "acc_norm"): 0.40}
MAGNITUDE_TASKS = {("lambada", "acc"): 0.30, ("lambada", "perplexity"): 30.0, ("nq_open", "exact_match"): 0.02}
REFERENCE = """source,model,method,importance,rate,stage,task,metric,value,protocol,provenance
paper,LLaMA-7B,dense,,0,dense,boolq,acc,73.18,0-shot,test
paper,LLaMA-7B,llm_pruner,l2,0.2,pruned,boolq,acc,59.8,0-shot,test
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
    experiment: str | None = None,
    model: str = "smollm2_135m",
    pruner: dict | None = None,
    seed: int | None = None,
) -> None:
    """One run folder as the runner leaves it: results.jsonl, config.json (with `pruner`), status.json."""
    rows = records(method, importance, stages, tasks, shift, experiment, model, seed)
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "config.json").write_text(json.dumps({"pruner": pruner or {}}))
    (folder / "status.json").write_text(json.dumps({"state": "done"}))
    os.utime(folder / "results.jsonl", (mtime, mtime))


def records(
    method: str,
    importance: str | None,
    stages: list[tuple[int, float, str]],
    tasks: dict[tuple[str, str], float],
    shift: float = 0.0,
    experiment: str | None = None,
    model: str = "smollm2_135m",
    seed: int | None = None,
) -> list[dict]:
    """The records of one run as the runner writes them (perplexities with seq_len, tasks with num_fewshot); with a
    `seed`, it seeds calibration and recovery too."""
    experiment = experiment or ("gholami_table3" if method == "magnitude" else "llm_pruner_table1")
    run = {"run_id": "r", "experiment": experiment, "model": model, "method": method}
    if seed is not None:
        run |= {"seed": seed, "calibration_seed": seed, "recovery_seed": seed}
    run |= {"importance": importance, "schedule": "oneshot", "recovery": "lora"}
    rows = []
    for step, rate, stage in stages:
        params = int(1e8 * (1 - rate))
        sizes = {"total_params": params, "nonzero_params": params, "achieved_sparsity": rate * 0.9}
        cell = {**run, **sizes, "step": step, "stage": stage, "requested_sparsity": rate}
        for (task, metric), base in tasks.items():
            protocol = (
                {"seq_len": 128, "limit": 4096} if metric in PPL_METRICS else {"num_fewshot": 0, "n_examples": 100}
            )
            row = {"task": task, "metric": metric, "value": value(base, rate, stage, shift), "stderr": 0.01}
            rows.append({**cell, **protocol, **row})
    return rows


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
    assert shown["NQ-open"].iloc[-1] == f"{100 * value(0.02, 0.5, 'pruned', 0.0):.2f} ± 1.00"  # its recorded stderr
    assert NO_DATA_CELL in to_markdown(grid)


# Rows of each paper's table as printed in ../shared/REFERENCES.md (garbled rows of Table 1 left out).
REFERENCE_ROWS = {
    "gholami_table3": (7, "Gholami & Omar 2023, Table 3"),
    "gholami_table4": (7, "Gholami & Omar 2023, Table 4"),
    "llm_pruner_table1": (24, "Ma et al. 2023 (LLM-Pruner), Table 1"),
    "llm_pruner_table2": (7, "Ma et al. 2023 (LLM-Pruner), Table 2"),
    "llm_pruner_table5": (4, "Ma et al. 2023 (LLM-Pruner), Table 5"),
    "llm_pruner_table6": (4, "Ma et al. 2023 (LLM-Pruner), Table 6"),
    "baselines": (11, ""),
}


def test_a_malformed_table_spec_is_one_line_naming_its_file_and_field(tmp_path) -> None:
    spec = tmp_path / "mine" / "table.yaml"
    spec.parent.mkdir()
    spec.write_text("title: t\nmethods: []\ncolumns: [{task: piqa, metric: acc}]\n")
    with pytest.raises(PrunesweepError, match=r"table\.yaml: columns\.0\.label: Field required"):
        load_specs(tmp_path)
    spec.write_text("title: t\nmethods: []\ncolumns: [{task: piqa, metric: acc, label: PIQA}]\naverage: [BoolQ]\n")
    with pytest.raises(PrunesweepError, match="average names BoolQ, which are not column labels"):
        load_specs(tmp_path)


def test_reference_rows_per_preset_cite_their_table() -> None:
    assert set(REFERENCE_ROWS) == set(SPECS) == {p.name for p in EXPERIMENTS_DIR.iterdir() if p.is_dir()}
    no_runs = tidy(pd.DataFrame())
    for name, (rows, citation) in REFERENCE_ROWS.items():
        path = EXPERIMENTS_DIR / name / "reference.csv"
        ref = load_reference(path)
        assert ref["value"].notna().all(), name
        assert ref["provenance"].str.startswith(citation).all(), name
        assert "README" not in path.read_text() or name == "baselines", name
        grid = build(SPECS[name], no_runs, ref)
        assert len(grid.wide) == rows, name
        assert (grid.wide["source"] != "ours").all()
    table1 = build(
        SPECS["llm_pruner_table1"], no_runs, load_reference(EXPERIMENTS_DIR / "llm_pruner_table1" / "reference.csv")
    )
    wide = table1.wide
    dense = wide[wide["stage"] == "dense"].set_index("model")
    assert dense.loc["LLaMA-7B", "BoolQ"] == pytest.approx(0.7318)
    assert dense.loc["LLaMA-7B (LLaMA paper)", "BoolQ"] == pytest.approx(0.765)
    assert pd.isna(dense.loc["LLaMA-7B (LLaMA paper)", "WikiText2 ↓"])
    channel = wide[(wide["rate"] == 0.5) & (wide["mode"] == "channel") & (wide["stage"] == "recovered")]
    assert channel["WikiText2 ↓"].tolist() == [1122.15] and channel["Average"].isna().all()  # printed without one
    assert cell(wide, 0.2, "element1+2", "pruned", "Average", source="paper") == pytest.approx(0.5739)
    assert wide[(wide["rate"] == 0.5) & (wide["variant"] == "element1") & (wide["stage"] == "pruned")].empty
    table6 = build(
        SPECS["llm_pruner_table6"], no_runs, load_reference(EXPERIMENTS_DIR / "llm_pruner_table6" / "reference.csv")
    )
    assert table6.wide["rate"].isna().all() and set(display(table6)["Rate"]) == {NOT_STATED}
    assert table6.wide.set_index("aggregation").loc["last", "PTB ↓"] == pytest.approx(170.875)


def smoke_run(folder: Path) -> None:
    """What `prunesweep experiment=smoke` leaves: a tiny model, iterative magnitude, PPL + PIQA, no recovery."""
    stages = [(0, 0.0, "dense"), (1, 0.25, "pruned"), (2, 0.5, "pruned")]
    tasks = {("wikitext2", "ppl"): 250.0, ("piqa", "acc"): 0.4, ("piqa", "acc_norm"): 0.7}
    write_run(folder, "magnitude", None, stages, tasks, experiment="smoke", model="tiny_llama")


def test_each_experiment_fills_its_own_table_unless_runs_are_named(outputs: Path) -> None:
    smoke_run(outputs / "runs" / "smoke" / "2024-02-01")
    tables = grids(collect(outputs), EXPERIMENTS_DIR, None)
    assert set(tables) == {*SPECS, "smoke"}
    smoke = tables["smoke"].wide
    assert set(smoke["model"]) == {"tiny_llama"} and (smoke["source"] == "ours").all()
    assert smoke.loc[smoke["rate"] == 0.5, "wikitext2/ppl"].tolist() == [pytest.approx(value(250.0, 0.5, "pruned", 0))]
    assert {"piqa/acc", "piqa/acc_norm", "Achieved sparsity"} <= set(smoke.columns)
    for name in ("gholami_table3", "llm_pruner_table1", "llm_pruner_table2"):
        assert "tiny_llama" not in set(tables[name].wide["model"]), name
    assert "smollm2_135m" not in set(tables["llm_pruner_table2"].wide["model"])  # its preset has no runs here
    named = grids(collect(outputs, experiments=["smoke"]), EXPERIMENTS_DIR, ["smoke"])
    gholami = named["gholami_table3"].wide
    assert set(gholami.loc[gholami["source"] == "ours", "model"]) == {"tiny_llama"}
    assert (gholami["source"] == "paper").sum() == REFERENCE_ROWS["gholami_table3"][0]
    assert named["llm_pruner_table1"].wide["source"].eq("paper").all()  # smoke has no llm_pruner rows, nor its dense


def test_paper_table_puts_its_reference_rows_beside_ours(tmp_path: Path) -> None:
    iterative = [
        (0, 0.0, "dense"),
        *[(i, rate, stage) for i, rate in enumerate((0.1, 0.3, 0.5), 1) for stage in ("pruned", "recovered")],
    ]
    write_run(tmp_path / "runs" / "gholami_table3" / "a", "magnitude", None, iterative, MAGNITUDE_TASKS)
    wide = grids(collect(tmp_path), EXPERIMENTS_DIR, None)["gholami_table3"].wide
    for rate in (0.1, 0.3, 0.5):
        rows = wide[(wide["rate"] == rate) & (wide["stage"] == "recovered")]
        assert list(rows["source"]) == ["ours", "paper"] and rows.index[1] == rows.index[0] + 1
    assert cell(wide, 0.3, "magnitude", "recovered", "LAMBADA ppl", source="paper") == pytest.approx(10.5)
    assert cell(wide, 0.3, "magnitude", "recovered", "LAMBADA ppl") == pytest.approx(value(30.0, 0.3, "recovered", 0))
    assert cell(wide, 0.5, "magnitude", "recovered", "#Params (non-zero)", source="paper") == 475e6
    shown = display(grids(collect(tmp_path), EXPERIMENTS_DIR, None)["gholami_table3"])
    assert shown.loc[shown["Source"] == "ours", "StoryCloze"].eq(MISSING_CELL).all()  # a task we did not measure


def test_missing_fields_and_unmeasured_columns_are_empty_cells() -> None:
    bare = [
        {
            "model": "m",
            "method": "llm_pruner",
            "stage": stage,
            "requested_sparsity": rate,
            "task": "boolq",
            "metric": "acc",
            "value": 0.6,
            "step": step,
        }
        for step, rate, stage in [(0, 0.0, "dense"), (1, 0.2, "pruned")]
    ]
    data = tidy(pd.DataFrame(bare).assign(run_dir="x", mtime=0.0, state="done"))
    grid = build(SPECS["llm_pruner_table1"], dedupe(data).data, load_reference(Path("missing.csv")))
    assert grid.wide["BoolQ"].tolist() == [0.6, 0.6] and grid.wide["PIQA"].isna().all()
    shown = display(grid)
    assert shown["PIQA"].eq(MISSING_CELL).all() and shown["Average"].eq(MISSING_CELL).all()
    assert shown["Protocol"].eq(MISSING_CELL).all() and list(shown["Method"]) == ["dense", "llm_pruner"]
    for spec in SPECS.values():  # no runs and no reference rows: an empty table, not an error
        assert "(no rows)" in to_markdown(build(spec, tidy(pd.DataFrame()), load_reference(Path("missing.csv"))))


SEED_SHIFTS = {0: 0.0, 1: 0.013, 2: -0.021}  # what each seed adds to every value of a run


def seeded_runs(root: Path, experiment: str = "demo") -> None:
    """l2 and random LLM-Pruner at 20% (pruned, recovered), three seeds each, plus a newer re-run of seed 0 of l2."""
    stages = [(0, 0.0, "dense"), (1, 0.2, "pruned"), (1, 0.2, "recovered")]
    for importance, offset in (("l2", 0.0), ("random", -0.1)):
        for seed, shift in SEED_SHIFTS.items():
            folder = root / "runs" / experiment / f"{importance}_seed{seed}"
            write_run(
                folder,
                "llm_pruner",
                importance,
                stages,
                LLM_PRUNER_TASKS,
                shift + offset,
                experiment=experiment,
                seed=seed,
            )
    rerun = root / "runs" / experiment / "l2_seed0_again"
    write_run(rerun, "llm_pruner", "l2", stages, LLM_PRUNER_TASKS, 0.0, 2_000_000.0, experiment, seed=0)


def test_cells_that_differ_only_in_seed_are_mean_std_and_n(tmp_path: Path) -> None:
    seeded_runs(tmp_path)
    collection = collect(tmp_path)
    grid = grids(collection, EXPERIMENTS_DIR, None)["demo"]
    wide = grid.wide
    for stage in ("pruned", "recovered"):
        seeds = [value(0.60, 0.2, stage, shift) for shift in SEED_SHIFTS.values()]
        row = wide[(wide["variant"] == "l2") & (wide["stage"] == stage)].iloc[0]
        assert row["boolq/acc"] == pytest.approx(np.mean(seeds))
        assert row["boolq/acc std"] == pytest.approx(np.std(seeds, ddof=1))
        assert row["boolq/acc seeds"] == 3
    dense = wide[wide["stage"] == "dense"]
    assert len(dense) == 1 and dense["boolq/acc seeds"].tolist() == [1]  # a hub model's dense baseline has no seed
    shown = display(grid)
    l2 = shown[(shown["Method"] == "l2") & (shown["Tune"] == "w/o tune")]["boolq/acc"].iloc[0]
    seeds = [100 * value(0.60, 0.2, "pruned", shift) for shift in SEED_SHIFTS.values()]
    assert l2 == f"{np.mean(seeds):.2f} ± {np.std(seeds, ddof=1):.2f} (n=3)"
    records = collection.records[collection.records["stage"] != "dense"]
    superseded = set(records.loc[records["superseded"], "run_dir"])
    assert superseded == {"runs/demo/l2_seed0"}  # a re-run with the same seeds replaces it; other seeds are kept
    pairs = within_noise(grid.long, grid.keys)
    assert "Achieved sparsity" not in set(pairs["column"])  # counts are not noisy measurements
    (pair,) = pairs[(pairs["column"] == "boolq/acc") & (pairs["stage"] == "pruned")].itertuples()
    std = np.std([value(0.60, 0.2, "pruned", shift) for shift in SEED_SHIFTS.values()], ddof=1)
    # each side: the seeds' standard error of the mean and the tasks' recorded stderr (0.01, same examples)
    assert pair.noise == pytest.approx((2 * (std**2 / 3 + 0.01**2)) ** 0.5) and not pair.within  # 0.1 apart
    (ax,) = render(grid)["boolq_acc"].axes
    bars = {round(seg[1][1] - seg[0][1], 6) for bar in ax.collections for seg in bar.get_segments()}
    assert round(2 * np.std(seeds, ddof=1), 6) in bars  # l2 w/o tune at 20%: mean ± the seeds' std
    assert round(2 * 100 * 0.01, 6) in bars  # the dense point (one run): ± its recorded stderr


def test_methods_at_one_rate_are_marked_within_noise_only_where_their_difference_is(tmp_path: Path) -> None:
    stages = [(0, 0.0, "dense"), (1, 0.2, "pruned")]
    for importance, shift in (("l2", 0.0), ("random", 0.012), ("element1", 0.1)):  # each value's stderr: 0.01
        write_run(
            tmp_path / importance, "llm_pruner", importance, stages, {("boolq", "acc"): 0.6}, shift, experiment="demo"
        )
    grid = grids(collect(tmp_path), EXPERIMENTS_DIR, None)["demo"]
    pairs = within_noise(grid.long, grid.keys).set_index(["method_a", "method_b"])
    assert pairs.loc[("l2", "random"), "noise"] == pytest.approx(0.01 * 2**0.5)
    assert pairs.loc[("l2", "random"), "within"]  # |diff| 0.012 <= 0.0141
    assert not pairs.loc[("element1", "l2"), "within"] and not pairs.loc[("element1", "random"), "within"]
    assert "Within noise (|diff| ≤ combined standard error) at 20% w/o tune: boolq/acc l2 ≈ random." in grid.notes
    assert not any("element1 ≈" in note for note in grid.notes)
    assert "Data behind each of our values: boolq/acc n=100 examples." in grid.notes
    shown = display(grid).set_index("Method")
    assert shown.loc["l2", "boolq/acc"] == f"{100 * value(0.6, 0.2, 'pruned', 0.0):.2f} ± 1.00"  # its stderr


def test_each_metric_says_how_much_data_its_values_saw(outputs: Path) -> None:
    sizes = grids(collect(outputs), EXPERIMENTS_DIR, None)["llm_pruner_table1"].sizes
    assert sizes["WikiText2 ↓"] == "≤4096 tokens" and sizes["BoolQ"] == "n=100 examples"


def test_figures_keep_labels_inside_and_share_axes_only_for_one_protocol(outputs: Path, tmp_path: Path) -> None:
    (tmp_path / "reference.csv").write_text(REFERENCE)
    grid = build(SPECS["llm_pruner_table1"], collect(outputs).data, load_reference(tmp_path / "reference.csv"))
    figures = render(grid)
    (ax,) = figures["boolq"].axes  # ours and the paper's 0-shot BoolQ: one panel
    styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    assert styles["paper (LLaMA-7B): l2 w/o tune"] == "--" and styles["l2 w/o tune"] == "-"
    assert ax.get_ylabel() == "BoolQ (%)" and ax.get_xlabel() == "pruning rate (requested)"
    for fig in figures.values():
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.tight_layout()
        for ax in fig.axes:
            for artist in (ax.yaxis.label, ax.xaxis.label, ax.get_legend()):
                box = artist.get_window_extent(renderer)
                assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1, ax.get_ylabel()
    (log_ax,) = figures["wikitext2"].axes  # perplexity 10 to 20: log axis within one decade
    FigureCanvasAgg(figures["wikitext2"]).draw()
    ticks = [t.get_text() for t in log_ax.get_yticklabels(minor=False) + log_ax.get_yticklabels(minor=True)]
    shown = [t for t in ticks if t]
    assert log_ax.get_yscale() == "log" and shown and all(float(t) > 0 for t in shown), ticks  # no 1.25×10¹
    grid.long.loc[grid.long["source"] == "paper", "protocol"] = "seq 4096"
    split = render(grid)["boolq"].axes
    assert [ax.get_title() for ax in split] == ["protocol: 0-shot; ours: n=100 examples", "protocol: seq 4096"]
    assert [len(ax.get_lines()) for ax in split] == [4, 1]  # l2/random x pruned/recovered; the paper's l2


class _Links(HTMLParser):
    """Every tag name and every src/href value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in {"src", "href"}]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys; from prunesweep.cli.report import main; status = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'reporting imported torch'; sys.exit(status)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)


def test_cli_writes_all_tables_figures_and_a_self_contained_page_without_torch(outputs: Path, tmp_path: Path) -> None:
    smoke_run(outputs / "runs" / "smoke" / "2024-02-01")
    for name in SPECS:  # every table's spec, but few reference rows: fewer figures, fast
        (tmp_path / "experiments" / name).mkdir(parents=True)
        shutil.copy(EXPERIMENTS_DIR / name / "table.yaml", tmp_path / "experiments" / name)
    (tmp_path / "experiments" / "llm_pruner_table1" / "reference.csv").write_text(REFERENCE)
    page = tmp_path / "report.html"
    done = run_cli(str(outputs), "--html", str(page), "--experiments-dir", str(tmp_path / "experiments"))
    assert done.returncode == 0, done.stderr
    out = outputs / "tables"
    for name in [*SPECS, "smoke"]:  # files for every table, also those no run of ours measured
        for suffix in (".md", ".tex", ".csv"):
            assert (out / f"{name}{suffix}").stat().st_size > 0
    names = ["smoke", "gholami_table3", "llm_pruner_table1"]  # the user's experiment first, then measured grids
    idle = sorted(set(SPECS) - set(names))
    assert done.stdout.startswith("### Experiment smoke: every measured metric by pruning rate")
    starts = [done.stdout.index(f"### {SPECS[name].title}\n") for name in names[1:]]
    assert starts == sorted(starts)
    assert all(f"### {SPECS[name].title}\n" not in done.stdout for name in idle)
    summary = f"Paper tables no collected run measured (reference rows only, in {out}/<name>.md): {', '.join(idle)}."
    assert done.stdout.count("Paper tables no collected run measured") == 1 and summary in done.stdout
    files = done.stdout[done.stdout.index("Files written:") :].splitlines()[1:]
    assert f"  {out / 'smoke.md'}" in files and f"  {page}" in files and f"  {out / 'report.md'}" in files
    assert (out / "report.md").read_text().startswith("### Experiment smoke")
    assert (out / "llm_pruner_table1" / "boolq.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "gholami_table3" / "lambada_ppl.png").is_file()
    assert (out / "smoke" / "wikitext2_ppl.png").is_file()
    assert not (out / "llm_pruner_table1" / "params.png").exists()  # efficiency is drawn in table 2 only
    assert "\\toprule" in (out / "llm_pruner_table1.tex").read_text()
    assert "| 20% | l2 | w/o tune | paper | LLaMA-7B | 0-shot |" in (out / "llm_pruner_table1.md").read_text()
    tidy_csv = pd.read_csv(out / "results_tidy.csv")
    assert tidy_csv["run_dir"].nunique() == 8 and tidy_csv["superseded"].any() and not tidy_csv["superseded"].all()
    text = page.read_text()
    parsed = _Links()
    parsed.feed(text)
    assert not {"script", "link", "iframe"} & set(parsed.tags)
    assert parsed.links and all(link.startswith(("data:image/png;base64,", "#")) for link in parsed.links)
    assert parsed.tags.count("table") == len(names)
    figures = sum(1 for name in names for _ in (out / name).glob("*.png"))
    assert parsed.tags.count("img") == figures > 0
    sections = [text.index(f'<section id="{name}"><h2>') for name in names]
    assert sections == sorted(sections)  # the user's experiment before the paper grids
    assert text.count('<div class="scroll"><table>') == len(names) and "overflow-x: auto" in text
    assert escape(summary) in text and text.index(escape(summary)) > sections[-1]
    assert "<td>59.80</td>" in text  # a paper cell


def test_notes_on_the_page_show_code_spans_as_code_and_escape_the_rest() -> None:
    from prunesweep.reporting.html import inline

    assert (
        inline("cells: `mean ± std (n=k)` over <k> seeds")
        == "cells: <code>mean ± std (n=k)</code> over &lt;k&gt; seeds"
    )
    assert inline("a stray ` backquote") == "a stray ` backquote"


def test_cli_puts_named_runs_into_the_chosen_paper_table(outputs: Path) -> None:
    assert (
        main([str(outputs), "--experiments", "llm_pruner_table1,gholami_table3", "--table", "llm_pruner_table2"]) == 0
    )
    table = pd.read_csv(outputs / "tables" / "llm_pruner_table2.csv")
    ours = table[table["source"] == "ours"]
    assert set(ours["variant"]) == {"dense", "l2", "random", "magnitude"}
    assert (outputs / "tables" / "llm_pruner_table2" / "achieved_sparsity.png").is_file()
    assert not (outputs / "tables" / "llm_pruner_table1.md").exists()


def test_bad_inputs_fail_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "outputs").mkdir()
    monkeypatch.setitem(sys.modules, "wandb", None)  # as good as offline: the W&B API cannot be used
    assert main([str(tmp_path / "outputs"), "--wandb-project", "me/sweep"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("prunesweep-report: error: --wandb-project me/sweep")
    assert main([str(tmp_path / "outputs"), "--table", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--table nope: no such table (have: baselines, gholami_table3" in err
