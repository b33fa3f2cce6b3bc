"""Sweeps share work through the step store, skip finished cells, survive SIGKILL, and run under launchers."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunesweep.run import cell as runner
from prunesweep.run import model_state
from prunesweep.store.results import RESULTS_FILE, read_results
from prunesweep.util.memory import PEAK_FIELDS
from tests.compose import compose_config

VOLATILE = {"run_id", "seconds", "eval_seconds", "prune_seconds", "reused", "store_key", "config_hash", "target_rate"}


def stable(rows):
    """Records without timings/bookkeeping, keyed so cells can be compared across sweeps."""
    return sorted(
        json.dumps({k: v for k, v in row.items() if k not in VOLATILE and not k.endswith(PEAK_FIELDS)}, sort_keys=True)
        for row in rows
    )


def sweep_cells(sweep_dir: Path) -> dict[float, list[str]]:
    cells = {}
    for results in sorted(sweep_dir.glob(f"*/{RESULTS_FILE}")):
        rows = read_results(results)
        cells[rows[0]["target_rate"]] = stable(rows)
    return cells


def cli(*args: str, tmp: Path, data_dir: str) -> list[str]:
    return [sys.executable, "-m", "prunesweep", "-m", "experiment=smoke", "pruner.rate=0.25,0.5",
            f"paths.data_dir={data_dir}", f"paths.store_dir={tmp}/store", f"hydra.sweep.dir={tmp}/sweep", *args]  # fmt: skip


def test_prefix_trajectories_and_reruns_reuse_the_store(tmp_path, data_dir, monkeypatch):
    base = ["experiment=smoke", f"paths.data_dir={data_dir}", f"paths.store_dir={tmp_path}/store"]
    shorter = runner.run(compose_config([*base, "pruner.rate=0.25"]), tmp_path / "shorter")
    monkeypatch.setattr(
        model_state, "load_model", lambda *a, **k: pytest.fail("base model loaded although a step was stored")
    )
    full = runner.run(compose_config(base), tmp_path / "full")  # reuses dense + 0.25, resumes from its checkpoint
    assert [row["reused"] for row in full if row["step"] < 2] == [True] * len(shorter)
    assert not any(row["reused"] for row in full if row["step"] == 2)
    assert stable(shorter) == stable([row for row in full if row["step"] < 2])
    again = runner.run(compose_config(base), tmp_path / "again")
    assert all(row["reused"] for row in again)
    assert stable(again) == stable(full)


def in_process_cells(tmp: Path, data_dir: str) -> dict[float, list[str]]:
    """The records of the sweep's two cells, each run in this process on a store of its own."""
    cells = {}
    for rate in (0.25, 0.5):
        base = ["experiment=smoke", f"paths.data_dir={data_dir}", f"paths.store_dir={tmp}/store-{rate}"]
        cells[rate] = stable(runner.run(compose_config([*base, f"pruner.rate={rate}"]), tmp / f"cell-{rate}"))
    return cells


def test_sigkill_mid_sweep_then_parallel_rerun_matches_uninterrupted(tmp_path, data_dir):
    expected = in_process_cells(tmp_path / "clean", data_dir)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli(tmp=killed, data_dir=data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = killed / "store"
    deadline = time.time() + 300
    while time.time() < deadline and len([p for p in store.glob("*") if not p.name.startswith(".")]) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # the dense baseline is stored; cell 0 is inside its first pruning step
    proc.wait()
    assert not (killed / "sweep" / "1_pruner.rate=0.5" / RESULTS_FILE).exists()

    resumed = cli("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=1", tmp=killed, data_dir=data_dir)
    subprocess.run(resumed, check=True, capture_output=True, timeout=600)
    assert sweep_cells(killed / "sweep") == expected
    for status in (killed / "sweep").glob("*/status.json"):
        assert json.loads(status.read_text())["state"] == "done"

    rerun = subprocess.run(cli(tmp=killed, data_dir=data_dir), check=True, capture_output=True, text=True, timeout=600)
    assert (rerun.stdout + rerun.stderr).count("finished earlier, skipped") == 2
    assert sweep_cells(killed / "sweep") == expected


def test_smoke_sweep_under_submitit_local(tmp_path, data_dir):
    # perplexity only: the launcher is the point, lm-eval runs under joblib above
    command = cli("hydra/launcher=submitit_local", "threads=1", "benchmark.tasks=[]", tmp=tmp_path, data_dir=data_dir)
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    cells = sweep_cells(tmp_path / "sweep")
    assert set(cells) == {0.25, 0.5}


def test_failing_cell_is_recorded_and_sweep_goes_on(tmp_path, data_dir):
    args = cli("benchmark.tasks=[]", tmp=tmp_path, data_dir=data_dir)
    args[args.index("pruner.rate=0.25,0.5")] = "pruner.rate=1.5,0.25"
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]  # the sweep finished, but not every cell
    assert f"prunesweep: sweep: 1 ok / 1 failed in {tmp_path}/sweep" in proc.stderr
    bad, good = (json.loads(next((tmp_path / "sweep").glob(f"{num}_*pruner.rate={rate}/status.json")).read_text())
                 for num, rate in ((0, 1.5), (1, 0.25)))  # fmt: skip
    assert bad["state"] == "failed" and "pruner.rate=1.5 must be in [0, 1)" in bad["reason"]
    assert good["state"] == "done"
