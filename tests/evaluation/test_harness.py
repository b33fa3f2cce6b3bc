"""Offline lm-eval tasks: the documented example counts, gold answers on hand-checked items, the result records
of a tiny-model run, and one-line errors for unknown tasks, missing files and TriviaQA offline."""

from __future__ import annotations

import math
from typing import Any

import pytest
from lm_eval.api.task import Task
from lm_eval.tasks import TaskManager

from prunesweep.evaluation.checks import check_tasks
from prunesweep.evaluation.harness import TASKS_DIR, run_tasks
from prunesweep.evaluation.tasks.loaders import DATASETS, read_splits, webquestions_answers
from prunesweep.models.loader import LoadedModel
from prunesweep.util.errors import PrunesweepError
from tests.models import tiny_model

# SOURCES.md counts of the eval split.
N_DOCS = {
    "boolq": 3270,
    "piqa": 1838,
    "hellaswag": 10042,
    "winogrande": 1267,
    "arc_easy": 2376,
    "arc_challenge": 1172,
    "openbookqa": 500,
    "lambada": 5153,
    "storycloze": 1871,
    "nq_open": 3610,
    "webquestions": 2032,
}
RECORD_KEYS = {
    "task", "metric", "value", "stderr", "n_examples", "data_file", "data_sha256",
    "lm_eval_version", "limit", "num_fewshot", "max_length", "truncated", "seconds",
}  # fmt: skip


@pytest.fixture(scope="module")
def tasks(data_dir: str) -> dict[str, Task]:
    """Every offline task as lm-eval builds it from our YAMLs."""
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": data_dir})
    return manager.load(sorted(DATASETS))["tasks"]


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return tiny_model("llama", num_hidden_layers=2)


def find(task: Task, **fields: Any) -> dict[str, Any]:
    return next(doc for doc in task.eval_docs if all(doc[k] == v for k, v in fields.items()))


def gold(task: Task, doc: dict[str, Any]) -> str:
    """The gold choice as lm-eval scores it (WinoGrande: the gold context, as it uses partial scoring)."""
    choices = task.doc_to_choice(doc)
    return choices[task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)]


def test_every_task_has_the_documented_number_of_examples(tasks: dict[str, Task]) -> None:
    assert {name: len(task.eval_docs) for name, task in tasks.items()} == N_DOCS


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        ("boolq", {"question": "does ethanol take more energy make that produces"}, "no"),  # label "false"
        ("boolq", {"question": "is house tax and property tax are same"}, "yes"),  # label "true"
        ("piqa", {"goal": "dresser"}, "finish, woodgrain with  bobby pin "),  # label from the .lst file: 1
        ("arc_easy", {"id": "NYSEDREGENTS_2015_8_28"}, "elements"),  # answer key "2"
        ("arc_challenge", {"id": "NYSEDREGENTS_2008_8_34"}, "Kinetic energy increases and potential energy decreases."),
        ("arc_challenge", {"id": "Mercury_7175875"}, "Planetary days will become shorter."),
        ("openbookqa", {"id": "8-343"}, "quit eating lunch out"),  # from "(A) ... (B) ..." with key B
        ("hellaswag", {"query": "Roof shingle removal: A man is sitting on a roof. he"}, "starts pulling up roofing on a roof."),
        ("storycloze", {"story_id": "b929f263-1dcd-4a0b-b267-5d5ff2fe65bb"}, "The next weekend, I was asked to please stay home."),
        (
            "winogrande",
            {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases."},
            "Sarah was a much better surgeon than Maria so Maria",
        ),
        (
            "winogrande",
            {"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases."},
            "Sarah was a much better surgeon than Maria so Sarah",
        ),
    ],
)  # fmt: skip
def test_gold_answer_of_hand_checked_items(tasks: dict[str, Task], name: str, fields: dict, expected: str) -> None:
    assert gold(tasks[name], find(tasks[name], **fields)) == expected


def test_label_distributions_match_the_sources(data_dir: str) -> None:
    def labels(name: str, key: str = "label") -> list[Any]:
        return [doc[key] for doc in read_splits(name, data_dir)["validation"]]

    assert sum(labels("boolq")) == 2033  # "true" strings
    assert sum(labels("piqa")) == 928
    assert [labels("hellaswag").count(i) for i in range(4)] == [2515, 2485, 2584, 2458]
    assert labels("winogrande", "answer").count("2") == 639


@pytest.mark.parametrize("name", ["arc_easy", "arc_challenge", "openbookqa"])
def test_every_answer_key_is_a_choice_label(data_dir: str, name: str) -> None:
    for docs in read_splits(name, data_dir).values():
        assert all(doc["answerKey"] in doc["choices"]["label"] for doc in docs)


def test_generation_and_loglikelihood_targets(tasks: dict[str, Task]) -> None:
    nq = tasks["nq_open"].eval_docs[0]
    assert tasks["nq_open"].doc_to_text(nq) == "Q: when was the last time anyone was on the moon?\nA:"
    assert tasks["nq_open"].doc_to_target(nq) == ["14 December 1972 UTC", "December 1972"]
    lambada = tasks["lambada"].eval_docs[0]
    assert tasks["lambada"].doc_to_target(lambada) == " signs"
    webq = tasks["webquestions"]
    assert webq.doc_to_choice(webq.eval_docs[0]) == ["Jamaican Creole English Language", "Jamaican English"]


def test_webquestions_answers_keep_unescaped_inner_quotes() -> None:
    target = '(list (description "William Fitzgerald") (description "Temperance "Tempie" Fitzgerald"))'
    assert webquestions_answers(target) == ["William Fitzgerald", 'Temperance "Tempie" Fitzgerald']
    assert webquestions_answers("(list (description Lawyer))") == ["Lawyer"]


def test_run_tasks_records(tiny: LoadedModel, data_dir: str) -> None:
    def run(names: list[str], num_fewshot: int = 0) -> list[dict[str, Any]]:
        return run_tasks(tiny.model, tiny.tokenizer, names, data_dir, True, 4, num_fewshot, 8, 256)

    records = run(["piqa", "arc_easy", "winogrande", "lambada", "nq_open"])
    assert [(r["task"], r["metric"]) for r in records] == [
        ("piqa", "acc"), ("piqa", "acc_norm"), ("arc_easy", "acc"), ("arc_easy", "acc_norm"),
        ("winogrande", "acc"), ("lambada", "perplexity"), ("lambada", "acc"), ("nq_open", "exact_match"),
    ]  # fmt: skip
    for r in records:
        assert set(r) == RECORD_KEYS
        assert (r["n_examples"], r["limit"], r["num_fewshot"]) == (4, 4, 0)
        if r["metric"] == "perplexity":
            assert r["value"] > 1 and r["stderr"] is None
        else:
            assert 0 <= r["value"] <= 1
            # lm-eval's mean_stderr of 0/1 scores: sqrt(p(1-p)/(n-1))
            assert r["stderr"] == pytest.approx(math.sqrt(r["value"] * (1 - r["value"]) / 3))
    piqa = records[:2]
    assert piqa[0]["data_file"] == "piqa/valid.jsonl+piqa/valid-labels.lst"
    assert piqa[0]["data_sha256"] == "93503cc97c679e45+b4192dc3a2a0363d"
    # The cached task is reused: a few-shot run is recorded as such, and zero-shot again gives the same numbers.
    assert {r["num_fewshot"] for r in run(["piqa"], num_fewshot=1)} == {1}
    timeless = [{k: v for k, v in r.items() if k != "seconds"} for r in piqa]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in run(["piqa"])] == timeless


def test_truncated_examples_are_counted(tiny: LoadedModel, tasks: dict[str, Task], data_dir: str) -> None:
    """lm-eval cuts context + continuation to max_length + 1 tokens; the byte-level tokenizer makes a request's
    length its UTF-8 byte count, so the expected count is known without lm-eval."""
    boolq = tasks["boolq"]
    longest = [
        max(
            len((boolq.doc_to_text(doc) + boolq.config.target_delimiter + c).encode()) for c in boolq.doc_to_choice(doc)
        )
        for doc in list(boolq.eval_docs)[:6]
    ]
    cut = sorted(longest)[2]  # some examples fit, some do not

    def truncated(max_length: int | None) -> dict[str, Any]:
        (record,) = run_tasks(tiny.model, tiny.tokenizer, ["boolq"], data_dir, True, 6, 0, 8, max_length)
        return record

    assert truncated(cut)["truncated"] == sum(n > cut + 1 for n in longest) > 0
    context = truncated(None)  # the model's own context
    assert context["max_length"] == tiny.model.config.max_position_embeddings
    assert context["truncated"] == sum(n > context["max_length"] + 1 for n in longest)


def test_batch_tokens_caps_the_batch_and_keeps_the_scores(tiny: LoadedModel, data_dir: str) -> None:
    shapes: list[tuple[int, int]] = []
    hook = tiny.model.register_forward_pre_hook(
        lambda _, args, kwargs: shapes.append(tuple(kwargs.get("input_ids", args[0] if args else None).shape)),
        with_kwargs=True,
    )

    def scores(batch_tokens: int | None) -> list[tuple[str, float]]:
        shapes.clear()
        records = run_tasks(tiny.model, tiny.tokenizer, ["boolq"], data_dir, True, 4, 0, 8, 256, batch_tokens)
        return [(r["metric"], r["value"]) for r in records]

    try:
        unbounded = scores(None)
        assert max(rows for rows, _ in shapes) == 8  # 4 examples x 2 choices in one batch
        assert scores(600) == unbounded
        assert shapes and all(rows * length <= 600 or rows == 1 for rows, length in shapes)
        assert max(rows for rows, _ in shapes) < 8
    finally:
        hook.remove()


def test_an_evaluation_outside_a_git_checkout_prints_nothing_of_git(
    tiny: LoadedModel, data_dir: str, tmp_path, monkeypatch, capfd
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # git must not find a repository above
    run_tasks(tiny.model, tiny.tokenizer, ["piqa"], data_dir, True, 2, 0, 8, 256)
    assert "not a git repository" not in capfd.readouterr().err


def test_check_tasks_accepts_every_offline_task(data_dir: str) -> None:
    check_tasks(sorted(DATASETS), data_dir, offline=True)


@pytest.mark.parametrize(
    ("task", "message"),
    [("triviaqa", "no offline data"), ("squad", "unknown offline benchmark task 'squad'")],
)
def test_check_tasks_rejects_unavailable_tasks(data_dir: str, task: str, message: str) -> None:
    with pytest.raises(PrunesweepError, match=message):
        check_tasks(["piqa", task], data_dir, offline=True)


def test_check_tasks_reports_a_missing_file(tmp_path) -> None:
    (tmp_path / "piqa").mkdir()
    (tmp_path / "piqa" / "valid.jsonl").write_text("")
    with pytest.raises(PrunesweepError, match=r"'piqa'.*valid-labels\.lst not found"):
        check_tasks(["piqa"], str(tmp_path), offline=True)
