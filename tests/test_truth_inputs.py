"""Inputs are looked inside before they are trusted: model weights are hashed by content, every record of every
data file is checked against its schema, model folders hold safetensors only, store manifests cover their entry,
and structural shape manifests are validated before loading (issue 16, items 13-17)."""

import bz2
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from prunesweep import model_state
from prunesweep.errors import PrunesweepError
from prunesweep.runner import run, validate
from tests.compose import compose_config


def smoke(data_dir, *overrides: str):
    return compose_config(["experiment=smoke", f"paths.data_dir={data_dir}", *overrides])


def prunesweep(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRUNESWEEP_ROOT", "PRUNESWEEP_STORE"))}
    return subprocess.run([sys.executable, "-m", "prunesweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("prunesweep: error:")]


@pytest.fixture
def no_model_load(monkeypatch):
    monkeypatch.setattr(model_state, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))


# -- item 14: every record of every data file is checked against its task's schema -------------------------------


@pytest.fixture
def edit_data(tmp_path, data_dir) -> tuple[Path, Callable[[str, Callable[[str], str]], Path]]:
    """A data dir of links to the real files; `edit(rel, change)` replaces one by `change(its text)`."""
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy, copy_function=os.symlink)

    def edit(rel: str, change: Callable[[str], str]) -> Path:
        path = copy / rel
        raw = path.read_bytes()
        packed = path.suffix == ".bz2"
        text = change((bz2.decompress(raw) if packed else raw).decode("utf-8"))
        path.unlink()
        path.write_bytes(bz2.compress(text.encode()) if packed else text.encode())
        return path

    return copy, edit


def last_line(change: Callable[[str], str]) -> Callable[[str], str]:
    """Apply `change` to the last line only: the first records (all lm-eval looks at) stay valid."""
    return lambda text: "\n".join([*text.splitlines()[:-1], change(text.splitlines()[-1])]) + "\n"


def last_json(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(line: str) -> str:
        record = json.loads(line)
        change(record)
        return json.dumps(record)

    return last_line(edit)


def last_array_item(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        records = json.loads(text)
        change(records[-1])
        return "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"

    return edit


def set_key(key: str, value) -> Callable[[dict], None]:
    return lambda record: record.__setitem__(key, value)


def drop_key(key: str) -> Callable[[dict], None]:
    return lambda record: record.pop(key)


def set_arc_answer(record: dict) -> None:
    record["answerKey"] = "Z"


def csv_last_field(value: str) -> Callable[[str], str]:
    return last_line(lambda line: line.rsplit(",", 1)[0] + "," + value)


def tsv_last_field(value: str) -> Callable[[str], str]:
    return last_line(lambda line: line.rsplit("\t", 1)[0] + "\t" + value)


def hellaswag_label(text: str) -> str:
    lines = text.splitlines()
    lines[-5] = "4"  # the gold label of the last item, which has 4 endings
    return "\n".join(lines) + "\n"


PIQA_ROWS, WINOGRANDE_ROWS, HELLASWAG_ITEMS = 1838, 1267, 10042
BAD_RECORDS = [  # (task or run overrides, file, change, line, field)
    (["benchmark.tasks=[piqa]"], "piqa/valid-labels.lst", last_line(lambda _: "5"), PIQA_ROWS, "label"),
    (["benchmark.tasks=[piqa]"], "piqa/valid.jsonl", last_json(drop_key("sol2")), PIQA_ROWS, "sol2"),
    (["benchmark.tasks=[piqa]"], "piqa/valid.jsonl", last_json(set_key("goal", 3)), PIQA_ROWS, "goal"),
    (["benchmark.tasks=[boolq]"], "boolq/val.jsonl", last_json(set_key("label", "maybe")), 3270, "label"),
    (["benchmark.tasks=[boolq]"], "boolq/val.jsonl", last_json(set_key("label", 1)), 3270, "label"),
    (["benchmark.tasks=[boolq]"], "boolq/val.jsonl", last_json(set_key("label", "True")), 3270, "label"),
    (["benchmark.tasks=[arc_easy]"], "arc_easy/ARC-Easy-Test.jsonl", last_json(set_arc_answer), 2376, "answerKey"),
    (["benchmark.tasks=[arc_challenge]"], "arc_challenge/ARC-Challenge-Dev.jsonl",
     last_json(lambda r: r["question"]["choices"][0].__setitem__("label", 1)), 299, "question.choices.0.label"),
    (["benchmark.tasks=[hellaswag]"], "hellaswag/hellaswag_val_full.txt.bz2", hellaswag_label,
     6 * HELLASWAG_ITEMS - 4, "label"),
    (["benchmark.tasks=[winogrande]"], "winogrande/dev-labels.lst", last_line(lambda _: "0"), WINOGRANDE_ROWS,
     "label"),
    (["benchmark.tasks=[winogrande]"], "winogrande/dev.json", last_array_item(set_key("sentence", "no blank")),
     WINOGRANDE_ROWS + 1, "sentence"),
    (["benchmark.tasks=[openbookqa]"], "openbookqa/test.tsv", tsv_last_field("E"), 501, "Answer Key"),
    (["benchmark.tasks=[storycloze]"], "storycloze/cloze_test_val__spring2016.csv", csv_last_field("3"), 1872,
     "AnswerRightEnding"),
    (["benchmark.tasks=[lambada]"], "lambada/lambada_test.jsonl", last_json(set_key("text", "oneword")), 5153,
     "text"),
    (["benchmark.tasks=[nq_open]"], "nq_open/NQ-open.dev.jsonl", last_json(set_key("answer", "x")), 3610, "answer"),
    (["benchmark.tasks=[webquestions]"], "webquestions/webquestions.examples.test.json",
     last_array_item(drop_key("targetValue")), 2033, "targetValue"),
    (["pruner=wanda"], "c4/c4_sample.jsonl", last_json(drop_key("text")), 1000, "text"),
    (["pruner=wanda", "pruner.calibration.dataset=alpaca"], "alpaca/alpaca_data_1k.json",
     last_array_item(set_key("output", None)), 1001, "output"),
    (["recovery=lora"], "alpaca/alpaca_data_1k.json", last_array_item(drop_key("instruction")), 1001, "instruction"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "rel", "change", "line", "field"), BAD_RECORDS)
def test_a_bad_record_anywhere_is_named_with_its_line_and_field(edit_data, tmp_path, no_model_load, overrides, rel,
                                                                change, line, field):  # fmt: skip
    data, edit = edit_data
    path = edit(rel, change)
    cfg = smoke(data, f"paths.store_dir={tmp_path}/store", *overrides)
    with pytest.raises(PrunesweepError, match=f"^{re.escape(f'data file {path}: line {line}: field {field!r}: ')}"):
        run(cfg, tmp_path / "run")


def test_a_labels_file_not_aligned_with_its_records_is_named(edit_data, tmp_path):
    data, edit = edit_data
    path = edit("piqa/valid-labels.lst", lambda text: text.split("\n", 1)[1])
    with pytest.raises(PrunesweepError, match=f"^data file {re.escape(str(path))}: {PIQA_ROWS - 1} labels for the "):
        validate(smoke(data, f"paths.store_dir={tmp_path}/store"))


@pytest.mark.parametrize(
    ("records", "field"),
    [([{"text": "a document"}, {"instruction": "do", "output": "done"}], "text"), ([{"text": 5}], "text")],
)
def test_a_local_recovery_file_holds_one_kind_of_valid_record(data_dir, tmp_path, records, field):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = smoke(data_dir, f"paths.store_dir={tmp_path}/store", "recovery=lora", f"recovery.dataset={path}")
    with pytest.raises(PrunesweepError, match=f"data file {path}: line {len(records)}: field '{field}'"):
        validate(cfg)


def test_every_shipped_data_file_passes_its_schema(data_dir, tmp_path):
    tasks = "piqa,boolq,arc_easy,arc_challenge,hellaswag,winogrande,openbookqa,storycloze,lambada,nq_open,webquestions"
    validate(smoke(data_dir, f"paths.store_dir={tmp_path}/store", f"benchmark.tasks=[{tasks}]", "pruner=wanda",
                   "benchmark.perplexity=[wikitext2,ptb]", "recovery=lora"))  # fmt: skip


def test_impossible_labels_fail_on_the_command_line_before_any_model_loads(edit_data, tmp_path):
    data, edit = edit_data
    path = edit("piqa/valid-labels.lst", last_line(lambda _: "5"))
    proc = prunesweep("experiment=smoke", f"paths.data_dir={data}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [f"prunesweep: error: data file {path}: line {PIQA_ROWS}: field 'label': "
                                 "Input should be '0' or '1' (got '5')"]  # fmt: skip
    assert not list(tmp_path.rglob("results.jsonl")) and not list((tmp_path / "outputs" / "store").glob("*/"))
