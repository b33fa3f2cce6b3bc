"""The quiet console: chatty libraries' lines are filtered, and a run ends by saying where things are."""

from __future__ import annotations

import logging

from prunesweep.cli.closing import closing_lines, closing_table
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


def records(step, stage, sparsity, nonzero, ppl, acc):
    fields = {"step": step, "stage": stage, "requested_sparsity": sparsity, "achieved_sparsity": sparsity,
              "nonzero_params": nonzero}  # fmt: skip
    return [{**fields, "task": "wikitext2", "metric": "ppl", "value": ppl},
            {**fields, "task": "piqa", "metric": "acc", "value": acc}]  # fmt: skip


def test_the_closing_table_has_one_header_row_and_one_number_format_per_column():
    rows = [*records(0, "dense", 0.0, 134515008, 35.1, 0.7), *records(1, "pruned", 0.5, 67257504, 912.2, 0.5312)]
    rows.append({**rows[0], "task": "boolq", "metric": "acc", "value": float("nan")})
    assert closing_table(rows).splitlines() == [
        "step  stage   requested  achieved  nonzero params  wikitext2/ppl  piqa/acc  boolq/acc",
        "   0  dense      0.0000    0.0000     134,515,008          35.10    0.7000          -",
        "   1  pruned     0.5000    0.5000      67,257,504         912.20    0.5312          -",
    ]
