"""How calibration samples are drawn is explicit: two rules, their fields recorded on every row and in the key."""

from __future__ import annotations

import json

import torch

from prunesweep.data.corpora import calibration_batch, documents
from prunesweep.models.tiny_tokenizer import byte_level_tokenizer
from prunesweep.run.cell import run
from tests.compose import compose_config


def test_first_documents_are_the_first_long_enough_documents_in_file_order(data_dir):
    tokenizer = byte_level_tokenizer()
    batch, _ = calibration_batch(tokenizer, "c4", data_dir, 4, 64, seed=0, sampling="first_documents")
    docs, _ = documents("c4", data_dir)
    tokens = [tokenizer(doc, add_special_tokens=False).input_ids for doc in docs]
    expected = [ids[:64] for ids in tokens if len(ids) >= 64][:4]
    assert batch.tolist() == expected
    again, _ = calibration_batch(tokenizer, "c4", data_dir, 4, 64, seed=7, sampling="first_documents")
    assert torch.equal(batch, again)  # no randomness in this rule


def test_random_windows_follow_the_seed_and_differ_from_first_documents(data_dir):
    tokenizer = byte_level_tokenizer()
    draw = [calibration_batch(tokenizer, "c4", data_dir, 4, 64, seed=s)[0] for s in (0, 0, 1)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    first, _ = calibration_batch(tokenizer, "c4", data_dir, 4, 64, seed=0, sampling="first_documents")
    assert not torch.equal(draw[0], first)


def test_rows_name_their_calibration_and_another_rule_is_another_store_key(data_dir, tmp_path):
    def cell(sampling: str) -> list[dict]:
        cfg = compose_config(["experiment=smoke", "pruner=wanda", "schedule=oneshot", f"paths.data_dir={data_dir}",
                              f"paths.store_dir={tmp_path}/store", f"pruner.calibration.sampling={sampling}"])  # fmt: skip
        (tmp_path / sampling).mkdir()
        return run(cfg, tmp_path / sampling)

    first, windows = cell("first_documents"), cell("random_windows")
    assert {row["calibration_sampling"] for row in first} == {"first_documents"}
    assert {(r["calibration_dataset"], r["calibration_samples"], r["calibration_seq_len"]) for r in windows} == {
        ("c4", 32, 128)
    }
    pruned = [[r for r in rows if r["step"] == 1] for rows in (first, windows)]
    assert not any(r["reused"] for r in pruned[1])  # the other rule's pruned model is not taken from the store
    assert {r["store_key"] for r in pruned[0]}.isdisjoint({r["store_key"] for r in pruned[1]})
    json.dumps(first)  # plain, JSON-able records
