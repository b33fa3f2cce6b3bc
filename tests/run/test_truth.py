"""Every record says what ran: unique run folders, one writer per cell, finished means complete, kept results
survive any sequence of runs, storage failures and contradictory settings fail in one line."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunesweep.config.paths import path_safe
from prunesweep.config.schema import check_config
from prunesweep.pruning.layer_drop import layers_to_drop
from prunesweep.pruning.registry import checked_settings
from prunesweep.run.cell import run, validate
from prunesweep.store.results import RESULTS_FILE, read_results
from prunesweep.util.errors import PrunesweepError
from tests.cli.test_bad_input import error_lines, prunesweep
from tests.compose import compose_config, settings_error


def smoke(data_dir, store, *overrides: str):
    return compose_config(["experiment=smoke", f"paths.data_dir={data_dir}", f"paths.store_dir={store}", *overrides])


# -- results lost ----------------------------------------------------------------------------------------------


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, data_dir):
    env = {**os.environ, "PRUNESWEEP_DATA_DIR": data_dir, "PRUNESWEEP_ROOT": str(tmp_path)}
    runs = [
        subprocess.Popen([sys.executable, "-m", "prunesweep", "experiment=smoke", f"pruner.rate={rate}",
                          "benchmark.tasks=[]"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rate in (0.3, 0.5)
    ]  # fmt: skip
    for proc in runs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    folders = sorted((tmp_path / "outputs" / "runs" / "smoke").iterdir())
    assert len(folders) == 2
    rates = [{row["target_rate"] for row in read_results(folder / RESULTS_FILE)} for folder in folders]
    assert sorted(rates, key=min) == [{0.3}, {0.5}]


@pytest.fixture
def finished_cell(tmp_path, data_dir):
    cfg = smoke(data_dir, tmp_path / "store")
    cell = tmp_path / "cell"
    return cfg, cell, run(cfg, cell)


def test_a_cell_flagged_done_with_missing_records_is_completed(finished_cell):
    cfg, cell, rows = finished_cell
    results = cell / RESULTS_FILE
    kept = [line for line in results.read_text().splitlines() if json.loads(line)["step"] < 2]
    results.write_text("\n".join(kept) + "\n")  # as a second writer killed mid-cell leaves it
    again = run(cfg, cell)
    assert {(r["step"], r["task"], r["metric"]) for r in again} == {(r["step"], r["task"], r["metric"]) for r in rows}
    assert len(read_results(results)) == len(rows)


def test_a_truncated_results_file_is_named_and_rebuilt_in_the_same_run(finished_cell, caplog):
    cfg, cell, rows = finished_cell
    results = cell / RESULTS_FILE
    results.write_text(results.read_text()[:-40])  # cut mid-line
    again = run(cfg, cell)
    assert str(results) in caplog.text and "damaged" in caplog.text
    assert [r["value"] for r in again] == [r["value"] for r in rows]
    assert len(read_results(results)) == len(rows)


def test_results_of_every_earlier_setting_are_kept_across_failed_runs(tmp_path, data_dir):
    cell, store = tmp_path / "cell", tmp_path / "store"
    values = {}
    for rate in (0.3, 0.4, 0.5):
        run(smoke(data_dir, store, f"pruner.rate={rate}"), cell)
        values[rate] = json.loads((cell / RESULTS_FILE).read_text().splitlines()[0])["config_hash"]
        with pytest.raises(PrunesweepError):
            run(smoke(data_dir, store, f"pruner.rate={rate}", "paths.data_dir=/nonexistent"), cell)
    kept = {read_results(path)[0]["config_hash"] for path in cell.glob("results*.jsonl")}
    assert kept == set(values.values())


def test_a_full_disk_is_one_line_and_the_rerun_completes(tmp_path, data_dir, monkeypatch):
    import prunesweep.store.steps

    cfg = smoke(data_dir, tmp_path / "store")
    real_save = prunesweep.store.steps.save_checkpoint

    def full(*args, **kwargs):
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")  # as safetensors

    monkeypatch.setattr(prunesweep.store.steps, "save_checkpoint", full)
    with pytest.raises(PrunesweepError, match=r"No space left on device .*re-run"):
        run(cfg, tmp_path / "cell")
    monkeypatch.setattr(prunesweep.store.steps, "save_checkpoint", real_save)
    rows = run(cfg, tmp_path / "cell")
    assert {r["step"] for r in rows} == {0, 1, 2}
    assert json.loads((tmp_path / "cell" / "status.json").read_text())["state"] == "done"


def test_a_read_only_store_is_one_line(tmp_path, data_dir, monkeypatch):
    import prunesweep.store.steps

    def read_only(self, key, blocking=True):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.root / ".locks" / f"{key}.lock"))

    monkeypatch.setattr(prunesweep.store.steps.StepStore, "lock", read_only)
    with pytest.raises(PrunesweepError, match=r"cannot write in .*\.lock: Permission denied"):
        run(smoke(data_dir, tmp_path / "store"), tmp_path / "cell")


def test_a_benchmark_that_measures_nothing_is_refused(data_dir):
    assert "measures nothing" in settings_error(data_dir, "benchmark.tasks=[]", "benchmark.perplexity=[]")


def test_a_worker_ends_when_its_parent_dies(tmp_path):
    child_code = (
        "import os, sys, time; from prunesweep.util import orphans; orphans.end_with_parent(0.1); "
        "print(os.getpid(), flush=True); time.sleep(60)"
    )
    parent_code = (
        "import subprocess, sys, time; "
        f"c = subprocess.Popen([sys.executable, '-c', {child_code!r}], stdout=sys.stdout); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        status = Path(f"/proc/{child}/status").read_text() if Path(f"/proc/{child}").exists() else ""
        if "State:\tZ" in status:
            break
        time.sleep(0.1)
    status = Path(f"/proc/{child}/status").read_text() if Path(f"/proc/{child}").exists() else "State:\tZ"
    assert "State:\tZ" in status  # gone (or a zombie awaiting its new parent)


# -- rows that name something else -----------------------------------------------------------------------------


def test_a_schedule_target_that_disagrees_with_the_rate_is_refused(data_dir):
    assert "pruner.rate owns the final rate" in settings_error(data_dir, "schedule.target=0.9", "pruner.rate=0.5")


def test_a_method_cannot_be_renamed(data_dir):
    assert "comes from its plugin" in settings_error(data_dir, "pruner=magnitude", "pruner.name=wanda")


def test_a_layer_drop_rate_that_removes_nothing_names_the_smallest_that_does():
    with pytest.raises(PrunesweepError, match=r"smallest rate that removes one is 0\.125"):
        layers_to_drop(4, 0.1)
    assert layers_to_drop(4, 0.125) == 1  # the one rounding rule: half up


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["schedule=oneshot", "pruner.rate=0.1"], "smallest rate that removes one is 0.125"),
     (["schedule=explicit", "schedule.milestones=[0.25,0.3]", "pruner.rate=0.3"], "smallest rate that removes one more is 0.375")],
)  # fmt: skip
def test_a_layer_drop_schedule_step_that_removes_nothing_fails_before_the_model_loads(data_dir, overrides, message):
    assert message in settings_error(data_dir, "pruner=layer_drop", *overrides)  # validate() loads no model


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["model=tiny_gpt2", "benchmark.ppl_seq_len=1024"], "benchmark.ppl_seq_len=1024"),
     (["model=tiny_gpt2", "benchmark.max_length=600"], "benchmark.max_length=600"),
     (["model=tiny_gpt2", "pruner=wanda", "pruner.calibration.seq_len=513"], "pruner.calibration.seq_len=513"),
     (["model=tiny_llama", "model.random_config.max_position_embeddings=64", "benchmark.max_length=64", "recovery=lora"], "recovery.cutoff_len=256")],
)  # fmt: skip
def test_a_sequence_longer_than_the_model_context_fails_before_the_model_loads(data_dir, overrides, key):
    assert f"{key} exceeds the" in settings_error(data_dir, *overrides)


@pytest.mark.parametrize(
    "override",
    ["pruner=owl pruner.owl_m=nan", "pruner=sparsegpt pruner.percdamp=inf", "recovery.lr=inf", "recovery.epochs=inf",
     "recovery.lora_dropout=nan", "pruner.rate=nan", "schedule=explicit schedule.milestones=[0.25,nan]"],
)  # fmt: skip
def test_non_finite_floats_are_refused_in_every_schema(data_dir, override):
    assert "must be a finite number" in settings_error(data_dir, *override.split())


@pytest.mark.parametrize("rate", ["0.3", "0.75"])
def test_a_rate_that_contradicts_an_nm_pattern_is_refused(data_dir, rate):
    message = settings_error(data_dir, "pruner=wanda", "pruner.pattern=2:4", f"pruner.rate={rate}", "schedule=oneshot")
    assert "pattern 2:4 implies sparsity 0.5" in message


def test_an_iterative_schedule_with_an_nm_pattern_is_refused(data_dir):
    assert "in one step" in settings_error(data_dir, "pruner=magnitude", "pruner.pattern=2:4")  # smoke: 0.25, 0.5


@pytest.mark.parametrize("value", ["abc", "true"])
def test_a_rate_that_is_not_a_number_is_one_line(value):
    cfg = compose_config(["experiment=smoke", f"pruner.rate={value}"])
    with pytest.raises(PrunesweepError, match=r"^pruner\.rate"):
        check_config(cfg)  # the command line's first check, before the method is typed
    with pytest.raises(PrunesweepError, match=r"^pruner\.rate"):
        checked_settings(cfg)


def test_a_task_listed_twice_is_refused(data_dir):
    assert "piqa more than once" in settings_error(data_dir, "benchmark.tasks=[piqa,piqa]")


def test_long_names_stay_within_the_file_system_limit(tmp_path):
    with pytest.raises(PrunesweepError, match="at most 100 characters"):
        validate(compose_config(["experiment=smoke", f"experiment_name={'x' * 300}"]))
    from prunesweep.config.paths import MAX_FOLDER_BYTES

    long = "pruner.rate=0.5," + ",".join(f"+tag{i}=value{i}" for i in range(40))
    safe = path_safe(long)
    assert len(safe.encode()) <= MAX_FOLDER_BYTES and safe == path_safe(long) and safe != path_safe(long + "x")
    (tmp_path / safe).mkdir()


def test_a_bad_setting_fails_in_one_line_on_the_command_line(tmp_path, data_dir):
    proc = prunesweep("experiment=smoke", f"paths.data_dir={data_dir}", "pruner=owl", "pruner.owl_m=nan", cwd=tmp_path)
    assert proc.returncode == 2 and error_lines(proc) == ["prunesweep: error: pruner.owl_m=nan must be a finite number"]
    assert "Traceback" not in proc.stderr


def test_an_nm_pattern_that_does_not_divide_the_layers_fails_before_the_dense_evaluation(tmp_path, data_dir):
    cfg = smoke(data_dir, tmp_path / "store", "pruner.pattern=2:3", "pruner.rate=0.333333333", "schedule=oneshot")
    with pytest.raises(PrunesweepError, match="not a multiple of 3"):
        run(cfg, tmp_path / "cell")
    assert not (tmp_path / "cell" / RESULTS_FILE).exists() or not read_results(tmp_path / "cell" / RESULTS_FILE)


def test_a_target_outside_the_method_packages_is_refused_before_any_import(tmp_path, data_dir, monkeypatch):
    (tmp_path / "payload.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\nclass Foo: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = settings_error(data_dir, "pruner._target_=payload.Foo")
    assert "not in a method package" in message and not (tmp_path / "ran").exists()
    monkeypatch.setenv("PRUNESWEEP_PLUGINS", "payload")
    assert "is not a prunesweep Pruner" in settings_error(data_dir, "pruner._target_=payload.Foo")
