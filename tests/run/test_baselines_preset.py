"""`experiment=baselines`: every method / rate / pattern it lists composes into a valid pruner, and its report
table has one row per method x rate / pattern with the tasks, achieved sparsity and parameter counts."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from prunesweep.cli.report import grids
from prunesweep.config.paths import config_dir, experiments_dir
from prunesweep.pruning.base import PrunerKind
from prunesweep.pruning.registry import build_pruner, with_typed_pruner
from prunesweep.reporting import collect
from prunesweep.reporting.tables import display
from prunesweep.run.cell import run
from tests.compose import compose_config

SWEEP = OmegaConf.load(Path(config_dir()) / "experiment" / "baselines.yaml").hydra.sweeper.params
GRID = [
    [f"pruner={method}", f"pruner.rate={rate}"]
    for method in SWEEP["pruner"].split(",")
    for rate in str(SWEEP["pruner.rate"]).split(",")
]
PATTERNS = [[f"pruner={m}", f"pruner.pattern={p}"] for m in ("magnitude", "wanda", "sparsegpt") for p in ("2:4", "4:8")]
COLUMNS = ["#Params", "#Params (non-zero)", "Achieved sparsity", "WikiText2 ↓", "PIQA", "ARC-e", "BoolQ"]
DEPTH = [["pruner=layer_drop", f"pruner.rate={rate}"] for rate in ("0.125", "0.25")]


def test_preset_sweeps_the_four_unstructured_methods_over_rates_to_0_7():
    assert SWEEP["pruner"].split(",") == ["magnitude", "wanda", "sparsegpt", "owl"]
    assert [float(r) for r in str(SWEEP["pruner.rate"]).split(",")] == pytest.approx([0.1 * i for i in range(1, 8)])


@pytest.mark.parametrize("overrides", GRID + PATTERNS + DEPTH, ids=lambda o: " ".join(o))
def test_every_listed_cell_composes_into_its_pruner(overrides):
    cfg = with_typed_pruner(compose_config(["experiment=baselines", *overrides]))
    pruner = build_pruner(cfg.pruner)
    assert cfg.model.name == "smollm2_135m" and cfg.schedule.kind == "oneshot"
    assert cfg.pruner.name == overrides[0].removeprefix("pruner=").replace("owl", "wanda")
    expected = {"layer_drop": PrunerKind.depth}.get(cfg.pruner.name, PrunerKind.unstructured)
    if "pattern" in overrides[-1]:
        expected = PrunerKind.semi_structured
    assert pruner.kind == expected


def test_report_table_rows_are_method_by_rate_or_pattern(tmp_path, data_dir):
    tiny = [
        "experiment=baselines",
        "model=tiny_llama",
        "logger=none",
        "benchmark.tasks=[]",  # the table's columns are its own; one small measurement per stage keeps this fast
        "benchmark.perplexity=[ptb]",
        "benchmark.ppl_max_tokens=256",
        f"paths.data_dir={data_dir}",
        f"paths.store_dir={tmp_path}/store",
    ]
    small = ["pruner.calibration.n_samples=4", "pruner.calibration.seq_len=32"]
    cells = {
        "magnitude-0.5": ["pruner=magnitude", "pruner.rate=0.5"],
        "wanda-2:4": ["pruner=wanda", "pruner.pattern=2:4", *small],
        "owl-0.5": ["pruner=owl", "pruner.rate=0.5", *small],
        "wanda-0.5-dense": ["pruner=wanda", "pruner.rate=0.5", "pruner.calibration.mode=dense", *small],
        "layer_drop-0.25": ["pruner=layer_drop", "pruner.rate=0.25", *small],
    }
    for name, overrides in cells.items():
        run(compose_config([*tiny, *overrides]), tmp_path / "runs" / "baselines" / name)

    grid = grids(collect(tmp_path), experiments_dir(), None)["baselines"]
    ours = grid.wide[grid.wide["source"] == "ours"]
    rows = [(r.variant, r.pattern, r.calibration_mode, round(r.rate, 3)) for r in ours.itertuples()]
    assert sorted(rows) == [
        ("dense", "-", "-", 0.0),
        ("layer_drop", "-", "-", 0.25),
        ("magnitude", "unstructured", "-", 0.5),
        ("owl", "unstructured", "sequential", 0.5),  # Wanda with OWL layer ratios, named as in reference.csv
        ("wanda", "2:4", "sequential", 0.5),
        ("wanda", "unstructured", "dense", 0.5),  # the calibration mode keeps its own row
    ]
    after = list(ours.columns[ours.columns.get_loc("protocol") + 1 :])
    assert after[: len(COLUMNS)] == COLUMNS  # the spec's columns, then their noise columns (std, seeds, stderr)
    assert ours[["#Params", "#Params (non-zero)", "Achieved sparsity"]].notna().all().all()
    by_method = ours.set_index(["variant", "pattern"])
    assert by_method.loc[("wanda", "2:4"), "Achieved sparsity"] == pytest.approx(0.5, abs=1e-3)
    dense_params = ours.loc[ours["variant"] == "dense", "#Params"].item()
    assert ours.loc[ours["variant"] == "layer_drop", "#Params"].item() < dense_params  # a layer really removed
    shown = display(grid)
    assert {"Pattern", "Calibration_mode", "PIQA", "ARC-e", "BoolQ", "Achieved sparsity"} <= set(shown.columns)
    owl = grid.wide[(grid.wide["variant"] == "owl") & (grid.wide["rate"] == 0.7)]
    assert list(owl["source"]) == ["Yin et al. 2023"]  # the paper's OWL row has our label
