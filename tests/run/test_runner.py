"""End to end on a tiny random LLaMA: dense + iterative magnitude steps, results schema, checkpoints, W&B files."""

import json
import shutil
import subprocess
import sys

import pytest

from prunesweep.evaluation.suite import evaluate
from prunesweep.run.cell import run
from prunesweep.store.checkpoint import load_checkpoint
from prunesweep.store.results import RESULTS_FILE, read_results
from tests.compose import compose_config, settings_error

REQUIRED_FIELDS = {
    "run_id", "config_hash", "experiment", "model", "method", "step", "stage", "requested_sparsity",
    "achieved_sparsity", "total_params", "nonzero_params", "task", "metric", "value", "stderr",
    "data_sha256", "lm_eval_version", "eval_seconds", "model_hash",
}  # fmt: skip


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    outputs = tmp_path_factory.mktemp("outputs")
    out, store = outputs / "runs" / "cell", outputs / "store"
    cfg = compose_config(["experiment=smoke", "logger=wandb", f"paths.data_dir={data_dir}", f"paths.store_dir={store}"])
    rows = run(cfg, out)
    return cfg, out, rows


def test_records_cover_dense_and_every_step(smoke_run):
    _cfg, out, rows = smoke_run
    assert read_results(out / RESULTS_FILE) == json.loads(json.dumps(rows))
    assert {(r["step"], r["stage"]) for r in rows} == {(0, "dense"), (1, "pruned"), (2, "pruned")}
    for row in rows:
        assert row.keys() >= REQUIRED_FIELDS
    metrics = {(r["task"], r["metric"]) for r in rows}
    assert ("wikitext2", "ppl") in metrics and ("piqa", "acc") in metrics and ("piqa", "acc_norm") in metrics
    assert json.loads((out / "status.json").read_text())["state"] == "done"


def test_achieved_sparsity_matches_requested(smoke_run):
    _, _, rows = smoke_run
    for row in rows:
        if row["step"] > 0:
            assert abs(row["achieved_sparsity"] - row["requested_sparsity"]) < 1e-3
    nonzero = {r["step"]: r["nonzero_params"] for r in rows}
    assert nonzero[0] > nonzero[1] > nonzero[2]


def test_checkpoint_reloads_with_identical_metrics(smoke_run, data_dir):
    cfg, out, rows = smoke_run
    model, tokenizer = load_checkpoint(out / "checkpoints" / "step_2")
    again = {(r["task"], r["metric"]): r["value"] for r in evaluate(model, tokenizer, cfg.benchmark, data_dir)}
    recorded = {(r["task"], r["metric"]): r["value"] for r in rows if r["step"] == 2}
    assert again == pytest.approx(recorded, rel=1e-6)


def test_checkpoint_links_resolve_after_the_outputs_folder_moves(smoke_run, tmp_path):
    _, out, _ = smoke_run
    moved = tmp_path / "moved"
    shutil.copytree(out.parents[1], moved, symlinks=True)  # links copied as they are, as a move keeps them
    for step in (1, 2):
        link = moved / "runs" / "cell" / "checkpoints" / f"step_{step}"
        assert link.is_symlink() and link.resolve().is_relative_to(moved / "store")
        assert (link / "model.safetensors").is_file()


def test_wandb_offline_run_written(smoke_run):
    _, out, _ = smoke_run
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))
    tables = runs[0] / "files" / "media" / "table"
    assert list(tables.glob("results_*.table.json"))
    (curve,) = tables.glob("curves/wikitext2/ppl/pruned_*.table.json")
    assert [rate for rate, _ in json.loads(curve.read_text())["data"]] == [0.0, 0.25, 0.5]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pruner.rate=1.5", "pruner.rate=1.5 must be in [0, 1)"),
        ("model=llama_7b model.path=/nonexistent/model", "does not exist"),
    ],
)
def test_bad_inputs_fail_fast_with_one_line_on_the_command_line(tmp_path, override, message):
    proc = subprocess.run(
        [sys.executable, "-m", "prunesweep", "experiment=smoke", *override.split(), f"hydra.run.dir={tmp_path}/run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("prunesweep: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("benchmark.tasks=[no_such_task]", "no_such_task"),
        ("paths.data_dir=/nonexistent/data", "does not exist"),
        ("paths.data_dir={tmp}", "data file for 'wikitext2' not found"),
    ],
)
def test_bad_inputs_fail_the_settings_check(tmp_path, data_dir, override, message):
    assert message in settings_error(data_dir, *override.format(tmp=tmp_path).split())


def test_every_step_records_the_peak_memory_of_its_stages(smoke_run):
    _cfg, _out, rows = smoke_run
    weights = 4 * rows[0]["total_params"]
    for row in rows:
        stages = ["load", "eval"] + (["prune"] if row["step"] > 0 else [])
        for stage in stages:  # the process holds at least the model's float32 weights and the interpreter
            assert row[f"{stage}_peak_rss_bytes"] > weights, (row["step"], stage)


def test_rate_zero_is_the_dense_baseline_only(data_dir):
    from prunesweep.run.cell import validate

    cfg = compose_config(["experiment=smoke", "pruner.rate=0", f"paths.data_dir={data_dir}"])
    assert validate(cfg).rates == []


def test_recovered_rows_say_what_they_were_tuned_on_and_for_how_long(tmp_path, data_dir):
    from prunesweep.recovery.data import dataset_location
    from prunesweep.util.hashing import file_sha256

    overrides = ["experiment=smoke", "pruner.rate=0.25", "schedule.milestones=[0.25]", "recovery=lora"]
    overrides += [
        "recovery.max_steps=2",
        "recovery.cutoff_len=384",
        "recovery.val_max_examples=2",
        "benchmark.tasks=[]",
    ]
    cfg = compose_config([*overrides, f"paths.data_dir={data_dir}", f"paths.store_dir={tmp_path}/store"])
    rows = run(cfg, tmp_path / "cell")
    recovered = [r for r in rows if r["stage"] == "recovered"]
    assert recovered and all(r["stage"] != "recovered" for r in rows if "recovery_dataset" not in r)
    sha = file_sha256(dataset_location("alpaca", data_dir))
    for r in recovered:
        assert r["recovery_dataset"] == f"alpaca@{sha[:16]}"
        assert r["recovery_steps"] == 2
        assert 0 < r["recovery_train_tokens"] <= 2 * 4 * 384  # steps x batch x cutoff_len
