"""Inputs are looked inside before they are trusted: model weights are hashed by content, every record of every
data file is checked against its schema, model folders hold safetensors only, store manifests cover their entry,
and structural shape manifests are validated before loading (issue 16, items 13-17)."""

import bz2
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import save_file

from prunesweep.models import loader
from prunesweep.models.shapes import MANIFEST
from prunesweep.run import model_state
from prunesweep.run.cell import run, validate
from prunesweep.run.fingerprint import hub_commit
from prunesweep.store.checkpoint import load_checkpoint, save_checkpoint
from prunesweep.store.steps import QUARANTINE, StepStore
from prunesweep.util.errors import PrunesweepError
from tests.cli.test_bad_input import error_lines, prunesweep, smoke
from tests.compose import compose_config
from tests.models import tiny_model
from tests.pruning.test_structural_pruning import context, llm_pruner


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


# -- item 13: a local model folder is hashed by content ---------------------------------------------------------


def local_model(folder: Path, seed: int) -> Path:
    """tiny_llama saved as a Hugging Face folder; another seed gives other weights of the same byte size."""
    loaded = tiny_model("llama", seed=seed)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def folder_run(data_dir, tmp_path: Path, folder: Path, out: str) -> list[dict]:
    model = ["model=llama_7b", f"model.path={folder}", "model.dtype=float32", "model.device=cpu"]
    return run(smoke(data_dir, f"paths.store_dir={tmp_path}/store", *model), tmp_path / out)


def test_other_weights_of_the_same_size_in_a_model_folder_are_not_reused(data_dir, tmp_path):
    folder = local_model(tmp_path / "model", seed=0)
    weights = folder / "model.safetensors"
    first = folder_run(data_dir, tmp_path, folder, "a")
    size = weights.stat().st_size
    local_model(folder, seed=1)
    assert weights.stat().st_size == size
    again = folder_run(data_dir, tmp_path, folder, "b")
    assert not any(row["reused"] for row in again)
    assert {r["model_hash"] for r in first}.isdisjoint({r["model_hash"] for r in again})
    ppl = [[r["value"] for r in rows if r["task"] == "wikitext2"] for rows in (first, again)]
    assert ppl[0] != ppl[1]


def test_a_random_model_is_hashed_by_its_config_and_seed(data_dir, tmp_path):
    def model_hash(*overrides: str) -> str:
        return validate(smoke(data_dir, f"paths.store_dir={tmp_path}/store", *overrides)).inputs["model"]

    assert model_hash("seed=0") == model_hash("seed=0") != model_hash("seed=1")
    assert model_hash() != model_hash("model.random_config.intermediate_size=256")


def test_a_hub_model_is_keyed_by_the_commit_its_revision_resolves_to(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--owner--model"

    def cache_at(commit: str) -> None:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")

    assert hub_commit("owner/model", "main") == "main"  # not cached: nothing to resolve without the network
    cache_at("a" * 40)
    assert hub_commit("owner/model", "main") == "a" * 40
    cache_at("b" * 40)  # the branch moved: another key
    assert hub_commit("owner/model", None) == hub_commit("owner/model", "main") == "b" * 40


# -- item 15: model folders hold safetensors named as their index says; nothing is unpickled -----------------------


def weights_folder(tmp_path: Path, *names: str, index: dict | None = None) -> Path:
    """A model folder with config.json and the given files (safetensors ones hold one real tensor each)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for name in names:
        if name.endswith(".safetensors"):
            save_file({name.split(".")[0]: torch.zeros(4)}, folder / name)
        else:
            (folder / name).write_bytes(b"\x80\x04K\x01.")  # a pickle
    if index is not None:
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
    return folder


@pytest.mark.parametrize(
    ("names", "index", "message"),
    [
        (["pytorch_model.bin"], None, "pytorch_model.bin is a pickled weight file"),
        (["model.safetensors", "pytorch_model.bin"], None, "pytorch_model.bin is a pickled weight file"),
        (["model.safetensors", "extra.pt"], None, "extra.pt is a pickled weight file"),
        (["model.safetensors", "extra.safetensors"], None, "extra.safetensors is beside model.safetensors"),
        (["a.safetensors"], None, "weight file model.safetensors not found"),
        (["a.safetensors", "b.safetensors"], {"a": "a.safetensors"}, "b.safetensors is not named by"),
        (["a.safetensors"], {"a": "a.safetensors", "b": "b.safetensors"}, "weight file b.safetensors not found"),
        (["a.safetensors"], {"a": "../a.safetensors"}, "field 'weight_map.a': String should match"),
        (["a.safetensors"], {"a": "a.safetensors", "z": "a.safetensors"}, "tensor 'z' is not in a.safetensors"),
    ],
)
def test_model_folders_hold_only_the_safetensors_their_index_names(data_dir, tmp_path, names, index, message):
    folder = weights_folder(tmp_path, *names, index=index)
    with pytest.raises(PrunesweepError, match=f"^model (folder|file) {folder}.*{re.escape(message)}"):
        validate(smoke(data_dir, f"paths.store_dir={tmp_path}/store", "model=llama_7b", f"model.path={folder}"))


def test_a_sharded_folder_named_by_its_index_passes(data_dir, tmp_path):
    folder = weights_folder(
        tmp_path, "a.safetensors", "b.safetensors", index={"a": "a.safetensors", "b": "b.safetensors"}
    )
    validate(smoke(data_dir, f"paths.store_dir={tmp_path}/store", "model=llama_7b", f"model.path={folder}"))


def test_a_pickled_model_folder_fails_on_the_command_line_before_any_model_loads(data_dir, tmp_path):
    folder = weights_folder(tmp_path, "pytorch_model.bin")
    proc = prunesweep("experiment=smoke", f"paths.data_dir={data_dir}", "model=llama_7b", f"model.path={folder}",
                      cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert line.startswith(f"prunesweep: error: model folder {folder}: pytorch_model.bin is a pickled weight file")
    assert not list(tmp_path.rglob("results.jsonl"))


def test_hub_and_local_models_load_safetensors_only(monkeypatch):
    seen: dict = {}

    def from_pretrained(path, **kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(loader.AutoTokenizer, "from_pretrained", lambda *a, **k: None)
    monkeypatch.setattr(loader.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    cfg = compose_config(["model=llama_7b", "model.device=cpu"]).model
    with pytest.raises(PrunesweepError, match="stop here"):
        loader.load_model(cfg, cache_dir="unused")
    assert seen["use_safetensors"] is True


# -- item 16: a store manifest lists every file of its entry, well-formed ------------------------------------------


@pytest.fixture
def stored_entry(tmp_path) -> tuple[StepStore, Path]:
    store = StepStore(tmp_path / "store")
    loaded = tiny_model("llama")
    store.save("k", [{"task": "wikitext2", "metric": "ppl", "value": 1.0}], loaded.model, loaded.tokenizer)
    return store, tmp_path / "store" / "k"


def drop_listing(rel: str) -> Callable[[dict], dict]:
    return lambda manifest: {k: v for k, v in manifest.items() if k != rel}


def set_listing(rel: str, field: str, value) -> Callable[[dict], dict]:
    return lambda manifest: {**manifest, rel: {**manifest[rel], field: value}}


def listed_as(rel: str) -> Callable[[dict], dict]:
    """records.jsonl's listing also under the path `rel`."""
    return lambda manifest: {**manifest, rel: manifest["records.jsonl"]}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda manifest: {}, "does not list records.jsonl"),
        (lambda manifest: [], "does not list records.jsonl"),
        (drop_listing("checkpoint/model.safetensors"), "checkpoint/model.safetensors is not listed"),
        (drop_listing("checkpoint/config.json"), "checkpoint/config.json is not listed"),
        (set_listing("records.jsonl", "bytes", "12"), "field 'bytes'"),
        (set_listing("records.jsonl", "bytes", True), "field 'bytes'"),
        (set_listing("records.jsonl", "sha256", "not-hex"), "field 'sha256'"),
        (listed_as("../k/records.jsonl"), "is not a path inside the entry"),
        (listed_as("/etc/hostname"), "is not a path inside the entry"),
    ],
)
def test_a_manifest_that_does_not_cover_its_entry_quarantines_it(stored_entry, caplog, change, reason):
    store, entry = stored_entry
    manifest = entry / "manifest.json"
    manifest.write_text(json.dumps(change(json.loads(manifest.read_text()))))
    assert not store.is_complete("k")
    assert not entry.exists() and len(list((store.root / QUARANTINE).glob("k.*"))) == 1
    assert any(reason in message for message in caplog.messages)


def test_an_edited_entry_with_an_emptied_manifest_is_recomputed(tmp_path, data_dir):
    def cell(out: str) -> list[dict]:
        return run(smoke(data_dir, f"paths.store_dir={tmp_path}/store"), tmp_path / out)

    first = cell("a")
    key = next(r["store_key"] for r in first if r["step"] == 1)
    entry = tmp_path / "store" / key
    (entry / "records.jsonl").write_text((entry / "records.jsonl").read_text().replace('"value": ', '"value": 1', 1))
    (entry / "manifest.json").write_text("{}")
    again = [r for r in cell("b") if r["step"] == 1]
    assert not any(r["reused"] for r in again)
    assert [r["value"] for r in again] == pytest.approx([r["value"] for r in first if r["step"] == 1])


# -- item 17: structural shape manifests and safetensors headers are validated before loading ----------------------


@pytest.fixture(scope="module")
def structural_checkpoint(tmp_path_factory) -> Path:
    loaded = tiny_model("llama")
    llm_pruner(global_ranking=True).prune_to(loaded.model, 0.2, context(loaded.tokenizer))
    folder = tmp_path_factory.mktemp("structural") / "ckpt"
    save_checkpoint(loaded.model, loaded.tokenizer, folder)
    assert (folder / MANIFEST).is_file()
    return folder


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        change(manifest)
        (folder / MANIFEST).write_text(json.dumps(manifest))

    return edit


def edit_header(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Rewrite the weights' safetensors header (same data section)."""

    def edit(folder: Path) -> None:
        raw = (folder / "model.safetensors").read_bytes()
        length = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + length])
        change(header)
        encoded = json.dumps(header).encode()
        (folder / "model.safetensors").write_bytes(len(encoded).to_bytes(8, "little") + encoded + raw[8 + length :])

    return edit


def first_tensor(header: dict) -> dict:
    return header[next(name for name in header if name != "__metadata__")]


def second_tensor(header: dict) -> dict:
    return header[[name for name in header if name != "__metadata__"][1]]


def overlap(header: dict) -> None:
    second_tensor(header)["data_offsets"] = list(first_tensor(header)["data_offsets"])
    second_tensor(header)["shape"], second_tensor(header)["dtype"] = first_tensor(header)["shape"], "F32"


def write_outside(folder: Path) -> None:
    shutil.copy(folder / "model.safetensors", folder.parent / "elsewhere.safetensors")
    edit_manifest(lambda m: m.__setitem__("weights", "../elsewhere.safetensors"))(folder)


def layer(index: int, key: str, value) -> Callable[[dict], None]:
    return lambda m: m["structure"]["layers"][index].__setitem__(key, value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (write_outside, "field 'weights': String should match"),
        (edit_manifest(lambda m: m.__setitem__("weights", os.path.abspath("x.safetensors"))), "field 'weights'"),
        (edit_manifest(lambda m: m.__setitem__("weights", "gone.safetensors")), "weights file 'gone.safetensors' not"),
        (edit_manifest(layer(0, "num_heads", -4)), "field 'structure.layers.0.num_heads'"),
        (edit_manifest(layer(1, "intermediate_size", 0)), "field 'structure.layers.1.intermediate_size'"),
        (edit_manifest(layer(0, "head_dim", 16.0)), "field 'structure.layers.0.head_dim'"),
        (edit_manifest(layer(0, "num_kv_heads", 3)), "is not a multiple of num_kv_heads 3"),
        (edit_manifest(lambda m: m["structure"].__setitem__("hidden_size", "64")), "field 'structure.hidden_size'"),
        (edit_manifest(lambda m: m["structure"].__setitem__("layers", [])), "field 'structure.layers'"),
        (edit_manifest(lambda m: m["config"].pop("model_type")), "model_type None is missing"),
        (edit_manifest(lambda m: m["config"].__setitem__("model_type", "nope")), "model_type 'nope' is missing"),
        (edit_manifest(lambda m: m.__setitem__("architecture", "bert")), "field 'architecture'"),
        (edit_manifest(lambda m: m.__setitem__("format", "other/2")), "field 'format'"),
        (lambda folder: (folder / MANIFEST).write_text("[1, 2"), "unreadable"),
        (lambda folder: (folder / MANIFEST).write_text("[]"), "field 'record'"),
        (edit_header(lambda h: first_tensor(h).__setitem__("shape", [-1, 4])), "field 'shape.0'"),
        (edit_header(lambda h: first_tensor(h).__setitem__("shape", "64")), "field 'shape'"),
        (edit_header(lambda h: first_tensor(h).__setitem__("dtype", 7)), "field 'dtype'"),
        (edit_header(lambda h: first_tensor(h).__setitem__("data_offsets", [0])), "field 'data_offsets'"),
        (edit_header(lambda h: first_tensor(h).__setitem__("data_offsets", [0, "4"])), "field 'data_offsets.1'"),
        (edit_header(lambda h: h.__setitem__("bad", [1, 2])), "tensor 'bad': field 'record'"),
        (edit_header(lambda h: first_tensor(h).__setitem__("shape", [1])), "data_offsets span"),
        (edit_header(overlap), "overlap"),
        (edit_header(lambda h: h.__setitem__("__metadata__", {"format": 1})), "__metadata__ is not a map"),
    ],
)
def test_a_bad_shape_manifest_or_header_is_one_line_before_loading(structural_checkpoint, tmp_path, damage, message):
    folder = tmp_path / "ckpt"
    shutil.copytree(structural_checkpoint, folder)
    damage(folder)
    with pytest.raises(PrunesweepError, match=re.escape(message)) as err:
        load_checkpoint(folder)
    assert "\n" not in str(err.value)


def test_a_header_whose_shapes_contradict_the_manifest_is_named(structural_checkpoint, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(structural_checkpoint, folder)
    edit_manifest(layer(0, "intermediate_size", 64))(folder)
    with pytest.raises(PrunesweepError, match=r"tensor 'model.layers.0.mlp.*has shape .* the manifest needs"):
        load_checkpoint(folder)


def test_one_list_of_inputs_is_checked_and_hashed_a_file_read_twice_in_both_roles(data_dir, tmp_path):
    plan = validate(smoke(data_dir, "pruner=wanda", "pruner.calibration.dataset=wikitext2", "recovery=lora",
                          f"paths.store_dir={tmp_path}/store"))  # fmt: skip
    wikitext = "wikitext2/wiki.test.raw"
    assert plan.inputs["calibration"] == plan.inputs["benchmark"][wikitext]
    assert set(plan.inputs) == {"code", "benchmark", "model", "calibration", "recovery"}
    assert len(plan.inputs["recovery"]) == 64  # the alpaca file's sha256
