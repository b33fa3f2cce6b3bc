"""The quiet console: chatty libraries' lines are filtered, and a run ends by saying where things are."""

from __future__ import annotations

import io
import logging

import pytest

from prunesweep.cli.closing import closing_lines, closing_table
from prunesweep.util import console
from prunesweep.util.console import _Quiet, bar, configure

CELL = "1_pruner.rate=0.3"


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


class Terminal(io.StringIO):
    """A string that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    """A root logger whose console is a terminal kept as a string (as Hydra's job logging sets it up), restored
    afterwards."""
    root, stream = logging.getLogger(), Terminal()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(name)s][%(levelname)s] - %(message)s"))
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.setattr(console, "_prefix", "")
    monkeypatch.setattr(console, "_parallel", False)
    return stream


def test_every_log_line_of_a_sweep_cell_names_the_cell_and_stands_on_a_line_of_its_own(terminal):
    configure(True, CELL)
    with bar(total=3, desc="eval piqa", file=terminal) as progress:  # the bar on the same terminal
        progress.update(1)
        logging.getLogger("prunesweep.run.stages").warning("step 1:\nsecond line")
    shown = [line.rsplit("\r", 1)[-1] for line in terminal.getvalue().split("\n")]  # what a terminal shows
    assert shown[:2] == [f"[{CELL}] [prunesweep.run.stages][WARNING] - step 1:", f"[{CELL}] second line"]
    assert shown[2].startswith(f"[{CELL}] eval piqa: ")


def test_a_single_run_has_no_prefix(terminal):
    configure(True)
    logging.getLogger("prunesweep").info("done")
    assert terminal.getvalue() == "[prunesweep][INFO] - done\n"


def test_a_parallel_cells_bar_prints_one_whole_line_naming_the_cell(terminal, capsys):
    configure(True, CELL, parallel=True)
    for _ in bar(range(3), desc="eval piqa"):
        logging.getLogger("prunesweep").info("a record")
    for _ in bar(range(2), desc="ppl@64", leave=False):
        pass
    err = capsys.readouterr().err
    assert "\r" not in err and err.endswith("\n")
    (piqa, ppl) = err.splitlines()  # one line per bar, its final state: no opening 0% line, none cleared away
    assert piqa.startswith(f"[{CELL}] eval piqa: 100%") and "3/3" in piqa
    assert ppl.startswith(f"[{CELL}] ppl@64: 100%") and "2/2" in ppl
    assert terminal.getvalue().splitlines() == [f"[{CELL}] [prunesweep][INFO] - a record"] * 3


def test_on_a_console_that_is_a_file_a_bar_prints_whole_lines_apart_from_log_lines(monkeypatch, tmp_path):
    root, log_file = logging.getLogger(), (tmp_path / "console.log").open("w")
    handler = logging.StreamHandler(log_file)  # output redirected: `prunesweep ... 2> console.log`
    handler.setFormatter(logging.Formatter("[%(name)s][%(levelname)s] - %(message)s"))
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.setattr(console, "_prefix", "")
    monkeypatch.setattr(console, "_parallel", False)
    configure(True)
    with log_file, bar(total=2, desc="load model", file=log_file) as progress:
        progress.update(1)
        logging.getLogger("prunesweep.models.loader").info("converting")
        progress.update(1)
    written = (tmp_path / "console.log").read_text()
    assert "\r" not in written
    (logged, final) = written.splitlines()
    assert logged == "[prunesweep.models.loader][INFO] - converting"
    assert final.startswith("load model: 100%") and "2/2" in final
