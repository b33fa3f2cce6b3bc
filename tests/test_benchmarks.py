"""Every benchmark runs end to end in its `--smoke` mode (tiny random model) and writes a report of finite
figures, so a benchmark broken by a change fails the suite instead of rotting unseen."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if path.stem != "common")
# what each report must hold besides its arguments
EXPECTED = {
    "bad_input_latency": "rows",
    "depth_and_owl": "block_influence",
    "gpu_check": "rows",
    "llm_pruner_vs_torch_pruning": "rows",
    "rate_search": "trials",
    "recovery_budget": "rows",
    "recovery_effect": "rows",
    "scale_ladder": "rows",
    "stage_memory": "stages",
    "structural_speed": "pruned_over_dense",
    "sweep_sharing": "wikitext2_ppl_shared",
    "unstructured_baselines": "rows",
    "verify_overhead": "reuse",
    "vs_llm_compressor": "rows",
}


def numbers(value):
    """Every number inside a JSON value."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


def test_every_benchmark_is_covered():
    assert sorted(EXPECTED) == SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_smoke_run_writes_finite_figures(name, tmp_path, data_dir, monkeypatch):
    # in this process (the interpreter and its imports are already warm); the command lines a benchmark runs
    # itself still run as a user runs them
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRUNESWEEP_DATA_DIR", data_dir)
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up while it is built
    spec.loader.exec_module(module)
    out = tmp_path / f"{name}.json"
    module.main(["--smoke", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["args"]["smoke"] is True
    assert report[EXPECTED[name]], f"{name}: empty {EXPECTED[name]}"
    assert all(math.isfinite(x) for x in numbers(report)), f"{name}: a figure is not finite"
