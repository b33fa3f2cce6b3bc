"""The quiet console: chatty libraries' lines are filtered, and a run ends by saying where things are."""

from __future__ import annotations

import logging

from prunesweep.cli.closing import closing_lines
from prunesweep.util.console import _Quiet


def record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "message", None, None)


def test_quiet_console_drops_lm_evals_chatter_but_not_errors_or_ours():
    quiet = _Quiet()
    assert not quiet.filter(record("lm_eval.api.task", logging.WARNING))
    assert not quiet.filter(record("lm_eval.evaluator", logging.INFO))
    assert quiet.filter(record("lm_eval.evaluator", logging.ERROR))
    assert quiet.filter(record("prunesweep.evaluation.harness", logging.WARNING))
    assert quiet.filter(record("prunesweep.run.stages", logging.INFO))


def test_closing_lines_name_the_results_the_wandb_run_and_its_sync_command(tmp_path):
    run = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    run.mkdir(parents=True)
    lines = closing_lines(tmp_path, tmp_path.parent)
    assert lines == [
        f"results: {tmp_path / 'results.jsonl'}",
        f"W&B run: {run}",
        f"upload:  wandb sync {run}",
        f"tables:  prunesweep-report {tmp_path.parent} --html {tmp_path.parent / 'report.html'}",
    ]
    assert [line[:8] for line in closing_lines(tmp_path / "elsewhere", tmp_path)] == ["results:", "tables: "]
