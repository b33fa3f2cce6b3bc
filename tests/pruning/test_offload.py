"""`model.offload`: layer-wise pruning (and the layer-wise scores of layer_drop and OWL) with the weights in host
memory or memory-mapped files gives the same weights, bit for bit, as with the model on its device; under `disk`
every weight is a mapped file page after pruning; a run's identity does not depend on where the weights waited."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunesweep.models.offload import Offloader, offloader_of
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.layer_drop import block_influence, layer_drop
from prunesweep.pruning.owl import activation_norms
from prunesweep.pruning.sparsegpt import prune_sparsegpt
from prunesweep.pruning.wanda import prune_wanda
from prunesweep.run.cell import run
from prunesweep.store.results import identity_hash
from tests.calibration_inputs import calibration_ids
from tests.compose import compose_config, make_pruner
from tests.mapped_files import mapped_ranges, unmapped
from tests.models import tiny_model

METHODS = {"wanda": prune_wanda, "sparsegpt": prune_sparsegpt}


def tiny(offload: str, cache: Path, arch: str = "llama"):
    return tiny_model(arch, offload=offload, cache_dir=cache).model


def pruned_weights(offload: str, cache: Path, method: str, mode: str, arch: str = "llama") -> dict[str, torch.Tensor]:
    model = tiny(offload, cache, arch)
    METHODS[method](model, calibration_ids(model), 0.5, mode=mode, batch_size=3)
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


@pytest.mark.parametrize(("method", "mode", "arch"), [
    ("wanda", "sequential", "llama"), ("sparsegpt", "sequential", "llama"), ("sparsegpt", "dense", "llama"),
    ("wanda", "dense", "gpt2"),
])  # fmt: skip
@pytest.mark.parametrize("offload", ["cpu", "disk"])
def test_offloaded_pruning_gives_the_same_weights_bit_for_bit(tmp_path, method, mode, arch, offload):
    expected = pruned_weights("none", tmp_path, method, mode, arch)
    got = pruned_weights(offload, tmp_path, method, mode, arch)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert sum(int((w == 0).sum()) for w in got.values()) > 0


@pytest.mark.parametrize("offload", ["cpu", "disk"])
def test_offloaded_layer_drop_scores_and_drops_the_same_layers_bit_for_bit(tmp_path, offload):
    dense, elsewhere = tiny("none", tmp_path), tiny(offload, tmp_path)
    ids = calibration_ids(dense)
    expected, got = layer_drop(dense, ids, 0.5), layer_drop(elsewhere, ids, 0.5)
    assert expected[0] == got[0] and torch.equal(expected[1], got[1])
    assert dense.config.num_hidden_layers == elsewhere.config.num_hidden_layers == 2


@pytest.mark.parametrize("offload", ["cpu", "disk"])
def test_offloaded_owl_activation_norms_are_the_same_bit_for_bit(tmp_path, offload):
    dense, elsewhere = tiny("none", tmp_path), tiny(offload, tmp_path)
    ids = calibration_ids(dense)
    expected, got = activation_norms(dense, ids, batch_size=3), activation_norms(elsewhere, ids, batch_size=3)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_block_influence_onloads_one_layer_at_a_time_and_leaves_the_weights_mapped(tmp_path, monkeypatch):
    model = tiny("disk", tmp_path)
    turns, onloaded = [], Offloader.onloaded

    def spy(self, layer, index, changed):
        turns.append((index, changed))
        return onloaded(self, layer, index, changed)

    mapped = [p.data_ptr() for p in model.parameters()]
    monkeypatch.setattr(Offloader, "onloaded", spy)
    block_influence(model, calibration_ids(model), batch_size=3)
    assert turns == [(index, False) for index in range(model.config.num_hidden_layers)]
    assert [p.data_ptr() for p in model.parameters()] == mapped


def test_under_disk_offload_every_weight_is_a_mapped_file_page_after_pruning(tmp_path):
    model = tiny("disk", tmp_path)
    folder = offloader_of(model).folder
    assert folder is not None and folder.is_relative_to(tmp_path)
    prune_sparsegpt(model, calibration_ids(model), 0.5, mode="sequential", batch_size=3)
    assert mapped_ranges(folder) and unmapped(dict(model.named_parameters()), folder) == []
    assert {p.name for p in folder.iterdir()} >= {"layer_0.safetensors", "layer_1.safetensors", "rest.safetensors"}


@pytest.mark.parametrize(("arch", "mode"), [("llama", "block"), ("llama", "channel"), ("gpt2", "block")])
def test_llm_pruner_under_disk_offload_cuts_the_same_model_and_maps_every_cut_weight_again(tmp_path, arch, mode):
    pruned = {}
    for offload in ("none", "disk"):
        loaded = tiny_model(arch, offload=offload, cache_dir=tmp_path)
        ctx = PruneContext(loaded.tokenizer, calibration=lambda m=loaded.model: calibration_ids(m))
        make_pruner("llm_pruner", mode=mode).prune_to(loaded.model, 0.2, ctx)
        pruned[offload] = loaded.model
    dense, disk = ({k: v.clone() for k, v in m.state_dict().items()} for m in pruned.values())
    assert dense.keys() == disk.keys() and all(torch.equal(dense[k], disk[k]) for k in dense)
    assert unmapped(dict(pruned["disk"].named_parameters()), offloader_of(pruned["disk"]).folder) == []
    model = pruned["disk"]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied


def test_the_offload_folder_goes_with_its_model(tmp_path):
    model = tiny("disk", tmp_path)
    folder = offloader_of(model).folder
    assert folder.is_dir()
    del model
    assert not folder.exists()


def test_where_the_weights_wait_is_not_part_of_a_runs_identity(tmp_path, data_dir):
    def identity(offload: str, *more: str) -> str:
        return identity_hash(compose_config(["experiment=smoke", f"model.offload={offload}", *more]), {"inputs": 1})

    assert identity("none") == identity("cpu") == identity("disk") == identity("disk", "model.max_device_memory=1GiB")


@pytest.mark.parametrize(("pruner", "offload"), [
    ("wanda", "disk"), ("wanda", "cpu model.max_device_memory=400KB"), ("layer_drop", "disk"), ("llm_pruner pruner.rate=0.2 schedule.milestones=[0.1,0.2]", "disk"),
])  # fmt: skip
def test_an_offloaded_run_records_the_numbers_of_one_without(tmp_path, data_dir, pruner, offload):
    overrides = [
        "experiment=smoke", *f"pruner={pruner}".split(), "pruner.calibration.n_samples=4", "pruner.calibration.seq_len=32",
        f"paths.data_dir={data_dir}", f"paths.store_dir={tmp_path}/store", f"paths.cache_dir={tmp_path}/cache",
    ]  # fmt: skip
    first = run(compose_config(overrides), tmp_path / "none")
    elsewhere = [f"paths.store_dir={tmp_path}/store2", *f"model.offload={offload}".split()]  # computed again
    again = run(compose_config([*overrides, *elsewhere]), tmp_path / "offloaded")
    metrics = lambda rows: {(r["step"], r["stage"], r["task"], r["metric"]): r["value"] for r in rows}  # noqa: E731
    assert len(metrics(first)) > 3 and metrics(first) == metrics(again)


def test_a_step_resumed_from_the_store_is_offloaded_too(tmp_path):
    from prunesweep.run.model_state import ModelState
    from prunesweep.store.checkpoint import save_checkpoint

    loaded = tiny_model()
    folder = save_checkpoint(loaded.model, loaded.tokenizer, tmp_path / "step_1")
    cfg = compose_config(["experiment=smoke", "model=tiny_llama", "model.offload=disk", f"paths.cache_dir={tmp_path}"])
    model = ModelState(cfg, [folder, folder]).at(1)
    offloader = offloader_of(model)
    assert offloader.mode == "disk" and offloader.folder.is_relative_to(tmp_path)
    assert mapped_ranges(offloader.folder)
