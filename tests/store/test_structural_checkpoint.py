"""Checkpoints of structurally pruned models: exact rebuild (also in a fresh process), no pickles, and the
efficiency columns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from prunesweep.evaluation.efficiency import efficiency_stats
from prunesweep.models.architecture import architecture_of
from prunesweep.models.params import count_params
from prunesweep.models.shapes import MANIFEST
from prunesweep.store.checkpoint import load_checkpoint, save_checkpoint
from tests.pruning.test_structural_pruning import ARCHS, context, llm_pruner, logits, probe, single_thread, tiny

__all__ = ["single_thread"]  # autouse fixture, imported for its effect

FRESH_PROCESS = """
import sys, torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from prunesweep.store.checkpoint import load_checkpoint
model, _ = load_checkpoint(sys.argv[1])
ids = torch.randint(0, 250, (2, 24), generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    save_file({"logits": model(input_ids=ids, use_cache=False).logits}, sys.argv[2])
"""


def pruned(arch: str, **kw):
    loaded = tiny(arch)
    llm_pruner(**kw).prune_to(loaded.model, 0.2, context(loaded.tokenizer))
    return loaded


def weight_files(folder: Path) -> set[str]:
    return {p.suffix for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".pkl"}}


@pytest.mark.parametrize("arch", ARCHS)
def test_non_uniform_model_reloads_exactly_from_the_manifest(arch, tmp_path):
    loaded = pruned(arch, global_ranking=True)
    save_checkpoint(loaded.model, loaded.tokenizer, tmp_path / "ckpt")
    folder = tmp_path / "ckpt"
    assert (folder / MANIFEST).is_file() and not (folder / "config.json").exists()
    assert weight_files(folder) == {".safetensors"}
    model, _ = load_checkpoint(folder)
    arch_adapter = architecture_of(model)
    assert arch_adapter.structure(model) == arch_adapter.structure(loaded.model)
    assert count_params(model) == count_params(loaded.model)
    torch.testing.assert_close(logits(model, probe()), logits(loaded.model, probe()), atol=0, rtol=0)


def test_fresh_process_reload_gives_identical_logits(tmp_path):
    loaded = pruned("llama", attention_unit="head")
    save_checkpoint(loaded.model, loaded.tokenizer, tmp_path / "ckpt")
    out = tmp_path / "logits.safetensors"
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "ckpt"), str(out)], check=True)
    torch.testing.assert_close(load_file(out)["logits"], logits(loaded.model, probe()), atol=0, rtol=0)


def test_uniform_result_is_a_plain_hf_folder(tmp_path):
    loaded = pruned("llama", mode="channel")
    folder = save_checkpoint(loaded.model, loaded.tokenizer, tmp_path / "ckpt")
    assert (folder / "config.json").is_file() and not (folder / MANIFEST).exists()
    model = AutoModelForCausalLM.from_pretrained(folder)  # no prunesweep code needed
    assert model.config.hidden_size == loaded.model.config.hidden_size < 64
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied
    torch.testing.assert_close(logits(model, probe()), logits(loaded.model, probe()), atol=0, rtol=0)


def test_pruning_resumes_from_a_checkpoint_against_the_dense_count(tmp_path):
    loaded = tiny("llama")
    dense = count_params(loaded.model)[0]
    llm_pruner().prune_to(loaded.model, 0.1, context(loaded.tokenizer))
    save_checkpoint(loaded.model, loaded.tokenizer, tmp_path / "ckpt")
    model, tokenizer = load_checkpoint(tmp_path / "ckpt")
    result = llm_pruner().prune_to(model, 0.2, context(tokenizer))
    assert result.details["dense_params"] == dense
    assert abs(result.achieved - 0.2) < 0.002 and abs(count_params(model)[0] / dense - 0.8) < 0.002


def test_efficiency_columns_shrink_with_pruning(tmp_path):
    dense = tiny("llama")
    small = pruned("llama")
    stats = {}
    for name, loaded in (("dense", dense), ("pruned", small)):
        folder = save_checkpoint(loaded.model, loaded.tokenizer, tmp_path / name)
        stats[name] = efficiency_stats(loaded.model, folder if name == "pruned" else None, runs=3)
    assert stats["pruned"]["params"] < stats["dense"]["params"]
    assert stats["pruned"]["macs"] < stats["dense"]["macs"]
    assert stats["dense"]["macs"] > 64 * stats["dense"]["params"] * 0.5  # ~ one MAC per weight per token
    assert stats["pruned"]["checkpoint_bytes"] > 4 * stats["pruned"]["params"] * 0.9
    assert stats["pruned"]["peak_memory_bytes"] > 0 and stats["pruned"]["latency_s"] > 0
