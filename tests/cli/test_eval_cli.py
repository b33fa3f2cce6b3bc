"""Stored checkpoints evaluated with lm-eval's own command line: stock `lm_eval --model hf` (plain HF checkpoint) and
`prunesweep-eval --model prunesweep` (non-uniform structural checkpoint) give the runner's own numbers exactly; their
results JSON becomes extra table rows; bad inputs end in one line."""

from __future__ import annotations

import io
import json
import logging
import sys
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lm_eval.__main__ import cli_evaluate

from prunesweep.cli.evaluate import check_offline_data, lm_eval_argv, main
from prunesweep.cli.report import main as report_main
from prunesweep.evaluation.lm_eval_model import PrunesweepLM
from prunesweep.evaluation.tasks import TASKS_DIR
from prunesweep.evaluation.tasks.loaders import DATA_DIR_ENV, load
from prunesweep.models.shapes import MANIFEST
from prunesweep.run.cell import run
from prunesweep.store.checkpoint import save_checkpoint
from prunesweep.store.provenance import PROVENANCE
from prunesweep.store.results import RESULTS_FILE, read_results
from prunesweep.util.errors import PrunesweepError
from tests.compose import compose_config
from tests.models import tiny_model

LIMIT = 16
PRUNERS = {"magnitude": ["pruner=magnitude", "pruner.rate=0.5"], "llm_pruner": ["pruner=llm_pruner", "pruner.rate=0.3"]}
# The runner's lm-eval settings in benchmark=smoke, passed the way a user would on the command line.
SAME_SETTINGS = ["--tasks", "piqa", "--limit", str(LIMIT), "--batch_size", "8", "--device", "cpu"]
EXPECTED_WARNINGS = ("overrides existing task", "`pretrained` model kwarg is not of type `str`")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_dir: str) -> dict[str, Path]:
    """One-shot runs of a tiny LLaMA (PIQA only): magnitude 0.5 (HF folder), LLM-Pruner 0.3 (first/last layer kept:
    non-uniform, a shape manifest)."""
    store, root = tmp_path_factory.mktemp("store"), tmp_path_factory.mktemp("outputs")
    folders = {}
    for name, overrides in PRUNERS.items():
        cfg = compose_config(
            [
                "experiment=smoke",
                "schedule=oneshot",
                *overrides,
                "benchmark.perplexity=[]",
                f"benchmark.limit={LIMIT}",
                f"experiment_name=eval_{name}",
                f"paths.data_dir={data_dir}",
                f"paths.store_dir={store}",
            ]
        )
        folders[name] = root / name
        run(cfg, folders[name])
    return folders


@pytest.fixture(autouse=True)
def data_env(monkeypatch: pytest.MonkeyPatch, data_dir: str) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, data_dir)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    loaded = tiny_model()
    return save_checkpoint(loaded.model, loaded.tokenizer, tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture
def lm_eval_log() -> Iterator[io.StringIO]:
    """What lm-eval logs (its console handler prints the same records: the filters sit on the loggers)."""
    text, logger = io.StringIO(), logging.getLogger("lm_eval")
    handler = logging.StreamHandler(text)
    logger.addHandler(handler)
    yield text
    logger.removeHandler(handler)


def recorded(run_dir: Path, step: int) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in read_results(run_dir / RESULTS_FILE) if r["step"] == step}


def lm_eval_results(output_path: Path) -> dict[str, Any]:
    (path,) = output_path.rglob("results_*.json")
    return json.loads(path.read_text())


def piqa(results: dict[str, Any]) -> dict[str, float]:
    return {metric: results["results"]["piqa"][f"{metric},none"] for metric in ("acc", "acc_norm")}


def test_stock_lm_eval_hf_on_a_magnitude_checkpoint_matches_the_runner(runs, tmp_path, monkeypatch) -> None:
    checkpoint = runs["magnitude"] / "checkpoints" / "step_1"
    assert (checkpoint / "config.json").is_file()
    argv = ["lm_eval", "--model", "hf", "--model_args", f"pretrained={checkpoint},max_length=256", *SAME_SETTINGS]
    monkeypatch.setattr(sys, "argv", [*argv, "--include_path", str(TASKS_DIR), "--output_path", str(tmp_path)])
    cli_evaluate()
    ours = recorded(runs["magnitude"], 1)
    assert piqa(lm_eval_results(tmp_path)) == {"acc": ours["acc"], "acc_norm": ours["acc_norm"]}
    assert ours != recorded(runs["magnitude"], 0)  # the pruned model scores differently: the match means something


def test_prunesweep_eval_on_a_non_uniform_structural_checkpoint_matches_the_runner(runs, tmp_path) -> None:
    checkpoint = runs["llm_pruner"] / "checkpoints" / "step_1"
    assert (checkpoint / MANIFEST).is_file() and not (checkpoint / "config.json").exists()
    args = ["--model", "prunesweep", "--model_args", f"pretrained={checkpoint},max_length=256", *SAME_SETTINGS]
    main([*args, "--output_path", str(tmp_path / "lm_eval"), "--log_samples"])
    results = lm_eval_results(tmp_path / "lm_eval")
    ours = recorded(runs["llm_pruner"], 1)
    assert piqa(results) == {"acc": ours["acc"], "acc_norm": ours["acc_norm"]}
    assert ours != recorded(runs["llm_pruner"], 0)
    assert list((tmp_path / "lm_eval").rglob("samples_piqa_*.jsonl"))  # --log_samples passed through

    # ... and back into the run's table as an extra row, placed by the checkpoint's provenance
    provenance = json.loads((checkpoint / PROVENANCE).read_text())
    assert provenance["record"] | {"method": "llm_pruner", "requested_sparsity": 0.3, "step": 1} == provenance["record"]
    assert report_main([str(runs["llm_pruner"]), "--lm-eval-results", str(tmp_path / "lm_eval")]) == 0
    table = (runs["llm_pruner"] / "tables" / "eval_llm_pruner.md").read_text()
    row = "| 30% | element1 | w/o tune | ours | tiny_llama | lm-eval | 0-shot | "
    line = table.split(row)[1].splitlines()[0]
    assert row in table and any(f"{100 * ours['acc_norm']:.2f} {end}" in line for end in ("|", "±"))
    assert "| 30% | element1 | w/o tune | ours | tiny_llama | runner |" in table


def test_include_path_is_added_only_when_not_given() -> None:
    assert lm_eval_argv(["--tasks", "piqa"]) == ["--tasks", "piqa", "--include_path", str(TASKS_DIR)]
    assert lm_eval_argv(["--tasks", "x", "--include_path", "/mine"]) == ["--tasks", "x", "--include_path", "/mine"]
    assert lm_eval_argv(["--include_path=/mine"]) == ["--include_path=/mine"]


def test_offline_task_without_data_dir_names_the_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(DATA_DIR_ENV)
    with pytest.raises(PrunesweepError, match=f"set {DATA_DIR_ENV}=") as err:
        load("piqa")
    assert isinstance(err.value, SystemExit) and err.value.code == f"prunesweep: error: {err.value}"  # uncaught: 1 line
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(PrunesweepError, match=f"piqa/valid.jsonl not found \\({DATA_DIR_ENV}="):
        load("piqa")


def test_a_folder_without_a_checkpoint_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(PrunesweepError, match=r"has neither config\.json nor a structural manifest"):
        PrunesweepLM(pretrained=str(tmp_path))


def test_prunesweep_eval_drops_only_the_warnings_about_what_it_does_on_purpose(tiny_checkpoint, lm_eval_log, capsys):
    args = ["--model", "prunesweep", "--model_args", f"pretrained={tiny_checkpoint}", "--tasks", "piqa", "--limit", "2"]
    stock = ["lm_eval", *args, "--include_path", str(TASKS_DIR), "--device", "cpu"]
    with pytest.MonkeyPatch.context() as patch:  # stock lm-eval, the same model type: the warnings are there
        patch.setattr(sys, "argv", stock)
        cli_evaluate()
    assert all(warning in lm_eval_log.getvalue() for warning in EXPECTED_WARNINGS)

    lm_eval_log.seek(0)
    lm_eval_log.truncate()
    capsys.readouterr()
    main([*args, "--device", "cpu"])
    out, log = "".join(capsys.readouterr()), lm_eval_log.getvalue()
    assert not any(warning in out + log for warning in EXPECTED_WARNINGS)
    assert "Selected Tasks: ['piqa']" in log and "Passed an already-initialized model" in log  # the rest is kept
    assert "|piqa |" in out


def test_prunesweep_eval_without_data_dir_is_one_line_before_any_model_loads(monkeypatch, capsys) -> None:
    monkeypatch.delenv(DATA_DIR_ENV)
    with pytest.raises(SystemExit) as exit_:  # a model load would fail first on the missing folder
        main(["--model", "prunesweep", "--model_args", "pretrained=/nonexistent", "--tasks", "piqa,arc_*"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert not out and err.splitlines() == [
        f"prunesweep: error: offline task 'arc_challenge' reads the benchmark data folder: set {DATA_DIR_ENV}="
        "/path/to/data (or pass data_dir through --metadata / dataset_kwargs)"
    ]
    monkeypatch.setenv(DATA_DIR_ENV, "/nonexistent")
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "prunesweep", "--model_args", "pretrained=/nonexistent", "--tasks", "piqa"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("prunesweep: error: offline task 'piqa': /nonexistent/piqa/valid.jsonl")


def test_the_data_check_takes_data_dir_from_the_metadata_and_looks_only_at_the_offline_tasks(monkeypatch, data_dir):
    monkeypatch.delenv(DATA_DIR_ENV)

    def check(include_path: str, tasks: list[str], **metadata: str) -> None:
        check_offline_data(Namespace(include_path=include_path, tasks=tasks, model_args={}, metadata=metadata))

    check(str(TASKS_DIR), ["piqa"], data_dir=data_dir)  # `--metadata '{"data_dir": ...}'`, as the loader reads it
    check("/my/tasks", ["piqa"])  # another folder's piqa
    check(str(TASKS_DIR), ["triviaqa"])  # a hub task
    with pytest.raises(PrunesweepError, match=f"set {DATA_DIR_ENV}="):
        check(str(TASKS_DIR), ["triviaqa", "*"])
