"""Readers for the offline benchmark files (see ../shared/data/SOURCES.md).

Each reader turns the vendored files into the column layout of the hub dataset that lm-eval's built-in task
reads, so the task YAMLs next to this file keep lm-eval's prompts, choices and metrics unchanged.
`load` is the `custom_dataset` entry point the YAMLs name. Each task also declares what its files' records look
like (`Records`: keys, types, label ranges), which `prunesweep.run.inputs` checks before any model loads.
"""

from __future__ import annotations

import bz2
import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from datasets import Dataset, DatasetDict
from lm_eval.tasks.hellaswag.utils import preprocess as hellaswag_preprocess
from pydantic import Field, PlainValidator, StringConstraints, ValidationInfo, create_model, field_validator

from prunesweep.data.records import NonBlank, Record, Records
from prunesweep.util.errors import PrunesweepError

Doc = dict[str, Any]
Splits = dict[str, list[Doc]]
DATA_DIR_ENV = "PRUNESWEEP_DATA_DIR"


class DataDirError(PrunesweepError, SystemExit):
    """A missing data folder or file. Also a SystemExit, so that under stock `lm_eval`, which catches nothing
    around task loading, Python prints just the `prunesweep: error: ...` line (no traceback) and exits with 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = f"prunesweep: error: {message}"


@dataclass(frozen=True)
class OfflineData:
    """Files one offline task reads (relative to the data dir, eval split first), their reader, the layout of
    each file's records (aligned with `files`) and whether files[1] holds one label per record of files[0]."""

    files: tuple[str, ...]
    read: Callable[..., Splits]
    records: tuple[Records, ...]
    labelled: bool = False


# -- record schemas of the vendored files (see SOURCES.md for each format) --------------------------------------


def _true_or_false(value: object) -> object:
    """A JSON boolean or SuperGLUE's spelling of one (val.jsonl has the strings "true"/"false"), nothing else."""
    if isinstance(value, bool) or value in ("true", "false"):
        return value
    raise ValueError("should be a JSON boolean or the string 'true' or 'false'")


class BoolqRecord(Record):
    question: str
    passage: str
    label: Annotated[object, PlainValidator(_true_or_false)]


class PiqaRecord(Record):
    goal: str
    sol1: str
    sol2: str


class HellaswagRecord(Record):
    ctx: str
    label: Literal["0", "1", "2", "3"]  # index of one of the 4 endings
    ending0: str
    ending1: str
    ending2: str
    ending3: str


class WinograndeRecord(Record):
    sentence: Annotated[str, StringConstraints(pattern="_")]  # the blank the options fill
    option1: str
    option2: str


class ArcChoice(Record):
    text: str
    label: NonBlank


class ArcQuestion(Record):
    stem: str
    choices: Annotated[list[ArcChoice], Field(min_length=2)]


class ArcRecord(Record):
    id: str
    question: ArcQuestion
    answerKey: str  # the key as the file spells it

    @field_validator("answerKey")
    @classmethod
    def _is_a_choice(cls, key: str, info: ValidationInfo) -> str:
        question = info.data.get("question")
        if question is not None and key not in (labels := [choice.label for choice in question.choices]):
            raise ValueError(f"answer key is not one of the choice labels {labels}")
        return key


class OpenbookqaRecord(Record):
    id: str = Field(alias="ID")
    stem: str = Field(alias="Question Stem")
    choices: str = Field(alias="Choices")
    answer: str = Field(alias="Answer Key")

    @field_validator("choices")
    @classmethod
    def _has_choices(cls, choices: str) -> str:
        if len(openbookqa_choices(choices)[0]) < 2:
            raise ValueError('expected "(A) ... (B) ..." with at least two choices')
        return choices

    @field_validator("answer")
    @classmethod
    def _is_a_choice(cls, key: str, info: ValidationInfo) -> str:
        choices = info.data.get("choices")
        if choices is not None and key.lstrip() not in (labels := openbookqa_choices(choices)[0]):
            raise ValueError(f"answer key is not one of the choice labels {labels}")
        return key


class StoryclozeRecord(Record):
    InputStoryid: str  # the column names as the file spells them
    InputSentence1: str
    InputSentence2: str
    InputSentence3: str
    InputSentence4: str
    RandomFifthSentenceQuiz1: str
    RandomFifthSentenceQuiz2: str
    AnswerRightEnding: Literal["1", "2"]


class LambadaRecord(Record):
    # context, a space, the target (what follows the last space: lm-eval's `text.split(' ')[-1]`)
    text: Annotated[str, StringConstraints(pattern=r"(?s)\S.* [^ ]*\S[^ ]*$")]


class NqOpenRecord(Record):
    question: str
    answer: Annotated[list[str], Field(min_length=1)]


class WebquestionsRecord(Record):
    url: str
    utterance: str
    targetValue: Annotated[str, StringConstraints(pattern=r"^\(list \(description .+\)\)$")]


def _labels(*values: str) -> Records:
    """A one-label-per-line file whose labels are `values`."""
    return Records("lines", (create_model("Label", __base__=Record, label=Literal[values]),), ("label",))


def _jsonl(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def _with_labels(docs: list[Doc], labels_path: Path, key: str, cast: Callable[[str], Any]) -> list[Doc]:
    """Attach the labels of a one-label-per-line file (PIQA, WinoGrande) to the aligned docs."""
    labels = labels_path.read_text(encoding="utf-8").split()
    if len(labels) != len(docs):
        raise PrunesweepError(f"{labels_path}: {len(labels)} labels for {len(docs)} examples")
    return [{**doc, key: cast(label)} for doc, label in zip(docs, labels, strict=True)]


def _choices(texts: list[str], labels: list[str]) -> dict[str, list[str]]:
    return {"text": texts, "label": labels}


def _one_split(split: str, parse: Callable[[Path], list[Doc]]) -> Callable[[Path], Splits]:
    """Reader for a single file holding the eval split."""
    return lambda path: {split: parse(path)}


def _test_and_dev(parse: Callable[[Path], list[Doc]]) -> Callable[[Path, Path], Splits]:
    """Reader for a test file (eval split) plus a dev file (few-shot pool, lm-eval's `validation` split)."""
    return lambda test_path, dev_path: {"test": parse(test_path), "validation": parse(dev_path)}


def _boolq_docs(path: Path) -> list[Doc]:
    # SuperGLUE's val.jsonl stores the label as the string "true"/"false"; the hub dataset has 0/1.
    return [{**doc, "label": int(doc["label"] in (True, "true"))} for doc in _jsonl(path)]


def _piqa(path: Path, labels_path: Path) -> Splits:
    return {"validation": _with_labels(_jsonl(path), labels_path, "label", int)}


def _winogrande(path: Path, labels_path: Path) -> Splits:
    # dev.json renamed the original keys (qID -> id, answer -> correct_option); the original
    # dev-labels.lst supplies `answer` ("1"/"2", as on the hub).
    docs = json.loads(path.read_text(encoding="utf-8"))
    fields = [{k: doc[k] for k in ("sentence", "option1", "option2")} for doc in docs]
    return {"validation": _with_labels(fields, labels_path, "answer", str)}


def _hellaswag_docs(path: Path) -> list[Doc]:
    """The 6-lines-per-item text form: `activity_label: ctx`, gold index, 4 endings.

    The file has no ctx_a/ctx_b split, so lm-eval's `ctx_b.capitalize()` cannot be re-applied; everything else
    goes through lm-eval's own `preprocess`, giving the `query`/`choices` its `process_docs` would build.
    """
    lines = bz2.decompress(path.read_bytes()).decode("utf-8").splitlines()
    if len(lines) % 6:
        raise PrunesweepError(f"{path}: {len(lines)} lines is not a multiple of 6")
    return [
        {
            "query": hellaswag_preprocess(lines[i]),
            "choices": [hellaswag_preprocess(ending) for ending in lines[i + 2 : i + 6]],
            "label": int(lines[i + 1]),
        }
        for i in range(0, len(lines), 6)
    ]


def _arc_docs(path: Path) -> list[Doc]:
    # Choice labels/answer keys are letters on most items and digits on some (NYSED), as on the hub.
    return [
        {
            "id": doc["id"],
            "question": doc["question"]["stem"],
            "choices": _choices(
                [c["text"] for c in doc["question"]["choices"]],
                [c["label"] for c in doc["question"]["choices"]],
            ),
            "answerKey": doc["answerKey"],
        }
        for doc in _jsonl(path)
    ]


def openbookqa_choices(choices: str) -> tuple[list[str], list[str]]:
    """OpenBookQA's `Choices` string "(A) ... (B) ... (C) ... (D) ..." -> (labels, texts)."""
    parts = re.split(r"\(([A-D])\) ", choices)[1:]
    return parts[0::2], [text.strip() for text in parts[1::2]]


def _openbookqa_docs(path: Path) -> list[Doc]:
    """OpenBookQA Main TSV; `Choices` is one string "(A) ... (B) ... (C) ... (D) ..."."""
    docs = []
    for row in _csv(path, delimiter="\t"):
        labels, texts = openbookqa_choices(row["Choices"])
        docs.append(
            {
                "id": row["ID"],
                "question_stem": row["Question Stem"],
                "choices": _choices(texts, labels),
                "answerKey": row["Answer Key"],
            }
        )
    return docs


def _storycloze_docs(path: Path) -> list[Doc]:
    return [
        {
            "story_id": row["InputStoryid"],
            **{f"input_sentence_{i}": row[f"InputSentence{i}"] for i in range(1, 5)},
            "sentence_quiz1": row["RandomFifthSentenceQuiz1"],
            "sentence_quiz2": row["RandomFifthSentenceQuiz2"],
            "answer_right_ending": int(row["AnswerRightEnding"]),
        }
        for row in _csv(path)
    ]


def webquestions_answers(target_value: str) -> list[str]:
    """SEMPRE `(list (description "A b") (description C))` -> ["A b", "C"] (inner quotes are not escaped)."""
    values = target_value.removeprefix("(list (description ").removesuffix("))").split(") (description ")
    return [v[1:-1] if len(v) > 1 and v[0] == v[-1] == '"' else v for v in values]


def _webquestions_docs(path: Path) -> list[Doc]:
    return [
        {"url": doc["url"], "question": doc["utterance"], "answers": webquestions_answers(doc["targetValue"])}
        for doc in json.loads(path.read_text(encoding="utf-8"))
    ]


ARC = Records("jsonl", (ArcRecord,))
OPENBOOKQA = Records("tsv", (OpenbookqaRecord,))
STORYCLOZE = Records("csv", (StoryclozeRecord,))
HELLASWAG = Records("lines", (HellaswagRecord,), tuple(HellaswagRecord.model_fields))

DATASETS: dict[str, OfflineData] = {
    "boolq": OfflineData(
        ("boolq/val.jsonl",), _one_split("validation", _boolq_docs), (Records("jsonl", (BoolqRecord,)),)
    ),
    "piqa": OfflineData(
        ("piqa/valid.jsonl", "piqa/valid-labels.lst"),
        _piqa,
        (Records("jsonl", (PiqaRecord,)), _labels("0", "1")),
        labelled=True,
    ),
    "hellaswag": OfflineData(
        ("hellaswag/hellaswag_val_full.txt.bz2",), _one_split("validation", _hellaswag_docs), (HELLASWAG,)
    ),
    "winogrande": OfflineData(
        ("winogrande/dev.json", "winogrande/dev-labels.lst"),
        _winogrande,
        (Records("json", (WinograndeRecord,)), _labels("1", "2")),
        labelled=True,
    ),
    "arc_easy": OfflineData(
        ("arc_easy/ARC-Easy-Test.jsonl", "arc_easy/ARC-Easy-Dev.jsonl"), _test_and_dev(_arc_docs), (ARC, ARC)
    ),
    "arc_challenge": OfflineData(
        ("arc_challenge/ARC-Challenge-Test.jsonl", "arc_challenge/ARC-Challenge-Dev.jsonl"),
        _test_and_dev(_arc_docs),
        (ARC, ARC),
    ),
    "openbookqa": OfflineData(
        ("openbookqa/test.tsv", "openbookqa/dev.tsv"), _test_and_dev(_openbookqa_docs), (OPENBOOKQA, OPENBOOKQA)
    ),
    "lambada": OfflineData(
        ("lambada/lambada_test.jsonl",), _one_split("test", _jsonl), (Records("jsonl", (LambadaRecord,)),)
    ),
    # lm-eval's storycloze_2016 scores the test split when it exists: test csv = eval, val csv = few-shot pool.
    "storycloze": OfflineData(
        ("storycloze/cloze_test_test__spring2016.csv", "storycloze/cloze_test_val__spring2016.csv"),
        _test_and_dev(_storycloze_docs),
        (STORYCLOZE, STORYCLOZE),
    ),
    "nq_open": OfflineData(
        ("nq_open/NQ-open.dev.jsonl",), _one_split("validation", _jsonl), (Records("jsonl", (NqOpenRecord,)),)
    ),
    "webquestions": OfflineData(
        ("webquestions/webquestions.examples.test.json",),
        _one_split("test", _webquestions_docs),
        (Records("json", (WebquestionsRecord,)),),
    ),
}


def read_splits(dataset: str, data_dir: str | Path) -> Splits:
    """The docs of offline dataset `dataset` per split, in the hub dataset's columns."""
    spec = DATASETS[dataset]
    return spec.read(*(Path(data_dir) / name for name in spec.files))


def resolve_data_dir(dataset: str, data_dir: str | None) -> Path:
    """The data folder of offline task `dataset`: `data_dir` if given, else $PRUNESWEEP_DATA_DIR; DataDirError
    (one line naming the variable) when neither is set or a file the task reads is missing."""
    given = data_dir or os.environ.get(DATA_DIR_ENV)
    if not given:
        raise DataDirError(
            f"offline task {dataset!r} reads the benchmark data folder: set {DATA_DIR_ENV}=/path/to/data "
            "(or pass data_dir through --metadata / dataset_kwargs)"
        )
    missing = [name for name in DATASETS[dataset].files if not (Path(given) / name).is_file()]
    if missing:
        source = "data_dir" if data_dir else DATA_DIR_ENV
        raise DataDirError(f"offline task {dataset!r}: {Path(given) / missing[0]} not found ({source}={given})")
    return Path(given)


def load(dataset: str, data_dir: str | None = None, **_: Any) -> DatasetDict:
    """lm-eval `custom_dataset` hook, called as `load(**task metadata, **dataset_kwargs)`.

    `dataset` comes from the YAML's dataset_kwargs; `data_dir` from the TaskManager metadata (the runner, or
    `lm_eval --metadata '{"data_dir": ...}'`), else from $PRUNESWEEP_DATA_DIR (stock `lm_eval --include_path`).
    The other metadata keys lm-eval adds (version, ...) are ignored.
    """
    splits = read_splits(dataset, resolve_data_dir(dataset, data_dir))
    return DatasetDict({split: Dataset.from_list(docs) for split, docs in splits.items()})
