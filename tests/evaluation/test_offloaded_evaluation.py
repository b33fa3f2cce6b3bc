"""Evaluation of an offloaded model through accelerate's hooks (`on_compute_device`): the same logits and
perplexity as the model on its device, and afterwards every weight the very tensor it was (for `disk`, still a
mapped file page)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate.utils import compute_module_sizes

from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.architecture import architecture_of
from prunesweep.models.dispatch import device_placement, input_device, on_compute_device
from prunesweep.models.loader import LoadedModel
from prunesweep.models.offload import offloader_of
from tests.calibration_inputs import calibration_ids
from tests.mapped_files import unmapped
from tests.models import tiny_model

TEXT = "the quick brown fox jumps over the lazy dog\n" * 40


def tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer, shared ones once (as `parameters()` lists them)."""
    return [*model.named_parameters(), *model.named_buffers()]


@torch.no_grad()
def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids.to(input_device(model)), use_cache=False).logits


def partial_budget(model: torch.nn.Module) -> int:
    """Device bytes for the embedding, the head and the first layer, with room to stream one more layer."""
    sizes = compute_module_sizes(model)
    layers = architecture_of(model).layers(model)
    layer = max(sizes[name] for name, module in model.named_modules() if any(module is m for m in layers))
    return sizes[""] - (len(layers) - 1) * layer + layer


def offloaded(arch: str, offload: str, cache: Path, budget: str) -> LoadedModel:
    """The tiny model under `offload`, its evaluation streaming every module (`budget` none), keeping the
    embedding, head and first layer on the device (`partial`) or all of it (`all`)."""
    loaded = tiny_model(arch, offload=offload, cache_dir=cache)
    bytes_ = {"none": None, "partial": partial_budget(loaded.model), "all": 1 << 40}[budget]
    offloader_of(loaded.model).resident_bytes = bytes_
    return loaded


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("offload", ["cpu", "disk"])
@pytest.mark.parametrize("budget", ["none", "partial", "all"])
def test_hooked_forwards_give_the_same_logits_and_perplexity(tmp_path, arch, offload, budget):
    dense, loaded = (
        tiny_model(arch, offload="none", cache_dir=tmp_path).model,
        offloaded(arch, offload, tmp_path, budget),
    )
    model, ids = loaded.model, calibration_ids(dense, n_samples=3, seq_len=16)
    expected = perplexity(dense, loaded.tokenizer, TEXT, seq_len=32, batch_size=2)
    placement = device_placement(model, offloader_of(model).resident_bytes)
    with on_compute_device(model):
        streamed = [p for name, stays in placement.items() if not stays for p in model.get_submodule(name).parameters()]
        assert all(p.device.type == "meta" for p in streamed)  # the hooks hold the streamed weights
        assert sum(p.device.type == "meta" for p in model.parameters()) == len(streamed)
        assert (len(streamed) == 0) == (budget == "all")
        assert input_device(model) == offloader_of(model).device
        assert torch.equal(logits(model, ids), logits(dense, ids))
        assert perplexity(model, loaded.tokenizer, TEXT, seq_len=32, batch_size=2) == expected


@pytest.mark.parametrize("offload", ["cpu", "disk"])
@pytest.mark.parametrize("budget", ["none", "partial", "all"])
def test_after_the_block_every_weight_is_the_tensor_it_was(tmp_path, offload, budget):
    model = offloaded("llama", offload, tmp_path, budget).model
    before = [(name, t, t.data_ptr()) for name, t in tensors(model)]
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    with on_compute_device(model):
        logits(model, calibration_ids(model, n_samples=2, seq_len=8))
    assert [(name, t, t.data_ptr()) for name, t in tensors(model)] == before
    assert tied and model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert not any(hasattr(m, "_hf_hook") for m in model.modules())
    if offload == "disk":
        assert unmapped(dict(model.named_parameters()), offloader_of(model).folder) == []


def test_the_weights_go_back_when_the_block_raises(tmp_path):
    model = tiny_model(offload="disk", cache_dir=tmp_path).model
    before = [t for _, t in tensors(model)]
    with pytest.raises(RuntimeError, match="inside"), on_compute_device(model):
        raise RuntimeError("inside")
    assert all(a is b for a, b in zip([t for _, t in tensors(model)], before, strict=True))
    assert input_device(model) == torch.device("cpu")


def test_without_offload_nothing_is_hooked(tmp_path):
    model = tiny_model(offload="none", cache_dir=tmp_path).model
    with on_compute_device(model):
        assert not any(hasattr(m, "_hf_hook") for m in model.modules())
        assert input_device(model) == next(model.parameters()).device


def test_the_device_budget_keeps_whole_layers_in_forward_order_and_tied_weights_together(tmp_path):
    model = tiny_model("llama", offload="cpu", cache_dir=tmp_path).model
    assert device_placement(model, None) == {"": False} and device_placement(model, 1 << 40) == {"": True}
    assert not any(device_placement(model, 1000).values())
    kept = []
    for budget in range(partial_budget(model), compute_module_sizes(model)[""], 20_000):
        placement = device_placement(model, budget)
        layers = [name for name, stays in placement.items() if stays and ".layers." in name]
        assert layers == [f"model.layers.{i}" for i in range(len(layers))]  # whole layers, from the first
        assert placement["model.embed_tokens"] and placement["lm_head"]  # the tied pair together
        kept.append(len(layers))
    assert kept == sorted(kept) and kept[0] == 1 and kept[-1] > 1
