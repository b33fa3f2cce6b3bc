"""Evaluation of an offloaded model through accelerate's hooks (`on_compute_device`): the same logits and
perplexity as the model on its device, and afterwards every weight the very tensor it was (for `disk`, still a
mapped file page)."""

from __future__ import annotations

import pytest
import torch

from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.dispatch import input_device, on_compute_device
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


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("offload", ["cpu", "disk"])
def test_hooked_forwards_give_the_same_logits_and_perplexity(tmp_path, arch, offload):
    dense, loaded = (
        tiny_model(arch, offload="none", cache_dir=tmp_path).model,
        tiny_model(arch, offload=offload, cache_dir=tmp_path),
    )
    model, ids = loaded.model, calibration_ids(dense, n_samples=3, seq_len=16)
    expected = perplexity(dense, loaded.tokenizer, TEXT, seq_len=32, batch_size=2)
    with on_compute_device(model):
        assert all(p.device.type == "meta" for p in model.parameters())  # the hooks hold the weights
        assert input_device(model) == offloader_of(model).device
        assert torch.equal(logits(model, ids), logits(dense, ids))
        assert perplexity(model, loaded.tokenizer, TEXT, seq_len=32, batch_size=2) == expected


@pytest.mark.parametrize("offload", ["cpu", "disk"])
def test_after_the_block_every_weight_is_the_tensor_it_was(tmp_path, offload):
    model = tiny_model(offload=offload, cache_dir=tmp_path).model
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
