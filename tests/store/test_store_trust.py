"""Stored results are keyed on the data they read, verified before reuse, and never silently overwritten."""

import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from prunesweep.run.cell import run
from prunesweep.store.results import RESULTS_FILE, read_results
from prunesweep.store.steps import QUARANTINE, StepStore
from tests.compose import compose_config


@pytest.fixture
def own_data(tmp_path, data_dir) -> Path:
    """A private copy of the files the smoke benchmark reads, so a test may edit them."""
    copy = tmp_path / "data"
    for sub in ("wikitext2", "piqa", "c4"):
        shutil.copytree(Path(data_dir) / sub, copy / sub)
    return copy


def smoke(tmp: Path, data: Path, out: str, *extra: str) -> list[dict]:
    overrides = ["experiment=smoke", f"paths.data_dir={data}", f"paths.store_dir={tmp}/store", *extra]
    return run(compose_config(overrides), tmp / out)


def ppl_rows(rows):
    return [r for r in rows if r["task"] == "wikitext2"]


def test_editing_a_benchmark_file_reruns_exactly_what_read_it(tmp_path, own_data):
    first = smoke(tmp_path, own_data, "a")
    again = smoke(tmp_path, own_data, "b")
    assert all(row["reused"] for row in again)
    with open(own_data / "wikitext2" / "wiki.test.raw", "a", encoding="utf-8") as handle:
        handle.write(" an edit in place changes the perplexity text\n")
    edited = smoke(tmp_path, own_data, "a")  # the finished cell is not skipped: its inputs changed
    assert not any(row["reused"] for row in edited)
    assert {r["data_sha256"] for r in ppl_rows(edited)}.isdisjoint({r["data_sha256"] for r in ppl_rows(first)})
    # magnitude reads no calibration text: editing it re-runs nothing
    with open(own_data / "c4" / "c4_sample.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"text": "more calibration text"}\n')
    assert all(row["reused"] for row in smoke(tmp_path, own_data, "c"))


def test_another_data_dir_with_other_content_is_not_reused(tmp_path, own_data, data_dir):
    smoke(tmp_path, Path(data_dir), "a")
    same_content = smoke(tmp_path, own_data, "b")
    assert all(row["reused"] for row in same_content)  # keyed on content, not on the folder's name
    (own_data / "piqa" / "valid-labels.lst").write_text(
        "".join("1\n" if line.strip() == "0" else "0\n" for line in (own_data / "piqa" / "valid-labels.lst").open())
    )
    assert not any(row["reused"] for row in smoke(tmp_path, own_data, "c"))


@pytest.mark.parametrize("damage", ["truncate_weights", "empty_records", "edit_records", "delete_checkpoint"])
def test_a_corrupt_entry_is_quarantined_and_recomputed(tmp_path, data_dir, damage, caplog):
    data = Path(data_dir)
    first = smoke(tmp_path, data, "a")
    key = next(r["store_key"] for r in first if r["step"] == 2)
    entry = tmp_path / "store" / key
    weights = next((entry / "checkpoint").glob("*.safetensors"))
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "empty_records":
        (entry / "records.jsonl").write_text("")
    elif damage == "edit_records":
        text = (entry / "records.jsonl").read_text()
        (entry / "records.jsonl").write_text(text.replace('"value": ', '"value": 1', 1))
    else:
        shutil.rmtree(entry / "checkpoint")
    again = smoke(tmp_path, data, "b")
    before, after = ([r for r in rows if r["step"] == 2] for rows in (first, again))
    assert not any(r["reused"] for r in after)
    assert [r["value"] for r in after] == pytest.approx([r["value"] for r in before])
    quarantined = list((tmp_path / "store" / QUARANTINE).glob(f"{key}.*"))
    assert len(quarantined) == 1
    assert any(key in message and "corrupt" in message for message in caplog.messages)


def test_temp_folders_of_a_killed_writer_are_removed(tmp_path):
    store = tmp_path / "store"
    stale = store / ".0123abcd.x1y2.tmp"
    stale.mkdir(parents=True)
    (store / "memo").mkdir()
    stale_file = store / "memo" / ".0123abcd.safetensors.q9.tmp"
    stale_file.write_bytes(b"partial")
    busy = StepStore(store)
    live = store / ".feedbeef.z3.tmp"
    live.mkdir()
    with busy.lock("feedbeef"):  # a writer that is alive holds its key's lock
        StepStore(store)
    assert not stale.exists() and not stale_file.exists() and live.exists()


def test_parallel_memo_requests_compute_once(tmp_path):
    store, calls, results = StepStore(tmp_path / "store"), [], []

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return {"scores": torch.arange(4.0)}

    threads = [threading.Thread(target=lambda: results.append(store.memo("k", compute))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert all(torch.equal(r["scores"], torch.arange(4.0)) for r in results)


def test_a_corrupt_memo_is_recomputed(tmp_path):
    store = StepStore(tmp_path / "store")
    store.memo("k", lambda: {"scores": torch.ones(3)})
    path = tmp_path / "store" / "memo" / "k.safetensors"
    path.write_bytes(path.read_bytes()[:-4])
    assert torch.equal(store.memo("k", lambda: {"scores": torch.zeros(3)})["scores"], torch.zeros(3))


def test_rerun_after_a_setting_change_keeps_the_previous_results(tmp_path, data_dir, caplog):
    data = Path(data_dir)
    old = smoke(tmp_path, data, "cell")
    new = smoke(tmp_path, data, "cell", "pruner.rate=0.4", "schedule.milestones=[0.2,0.4]")
    kept = list((tmp_path / "cell").glob("results.*.jsonl"))
    assert len(kept) == 1 and read_results(kept[0]) == old
    assert read_results(tmp_path / "cell" / RESULTS_FILE) == new
    assert any("pruner.rate: 0.5 -> 0.4" in message for message in caplog.messages)
