"""LLM-Pruner's calibration gradients, taken one decoder layer at a time: equal, bit for bit, to one backward
through the whole model, with the model in any `model.offload` mode left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from prunesweep.models.architecture import architecture_of
from prunesweep.models.offload import Offloader, offloader_of
from prunesweep.pruning.structural.gradients import Gradients, calibration_gradients
from tests.mapped_files import unmapped
from tests.models import tiny_model


def whole_model_gradients(model: nn.Module, batch: torch.Tensor, params: list, second_order: bool) -> Gradients:
    """The reference: the model in float32, one backward through all of it per chunk."""
    dtype = next(model.parameters()).dtype
    flags = {p: p.requires_grad for p in model.parameters()}
    model.float().eval()
    for p in flags:
        p.requires_grad_(any(p is q for q in params))
    grad = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    fisher = [torch.zeros_like(g) for g in grad]
    with torch.enable_grad():
        for chunk in batch.split(1) if second_order else [batch]:
            loss = model(input_ids=chunk, labels=chunk, use_cache=False).loss
            for i, g in enumerate(torch.autograd.grad(loss, params)):
                grad[i] += len(chunk) / len(batch) * g
                fisher[i] += g.square() / len(batch)
    for p, flag in flags.items():
        p.requires_grad_(flag)
    model.to(dtype)
    ids = [id(p) for p in params]
    return Gradients(dict(zip(ids, grad, strict=True)), dict(zip(ids, fisher, strict=True)) if second_order else None)


def group_weights(model: nn.Module, mode: str) -> list[nn.Parameter]:
    """The weights LLM-Pruner scores: two layers' attention and MLP groups (`block`) or the hidden group."""
    arch = architecture_of(model)
    groups = (
        [arch.hidden_group(model)]
        if mode == "channel"
        else [arch.attention_group(model, 1, "kv_group"), arch.mlp_group(model, 1)]
    )
    return list({id(s.module.weight): s.module.weight for g in groups for s in g.slices}.values())


def batch() -> torch.Tensor:
    return torch.randint(0, 250, (3, 24), generator=torch.Generator().manual_seed(3))


def assert_equal(got: Gradients, expected: Gradients) -> None:
    assert got.grad.keys() == expected.grad.keys()
    assert all(torch.equal(got.grad[k], expected.grad[k]) for k in expected.grad)
    assert (got.fisher is None) == (expected.fisher is None)
    if expected.fisher is not None:
        assert all(torch.equal(got.fisher[k], expected.fisher[k]) for k in expected.fisher)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("second_order", [False, True])
@pytest.mark.parametrize("mode", ["block", "channel"])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_layer_by_layer_gradients_equal_the_whole_model_backward_bit_for_bit(arch, mode, second_order, dtype):
    model = tiny_model(arch).model.to(dtype)  # llama: tied head, so `channel` sums the embedding's two parts
    params = group_weights(model, mode)
    got = calibration_gradients(model, batch(), params, second_order)
    assert_equal(got, whole_model_gradients(model, batch(), params, second_order))
    assert {p.dtype for p in model.parameters()} == {dtype} and all(p.requires_grad for p in model.parameters())
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() and g.abs().sum() > 0 for g in got.grad.values())


@pytest.mark.parametrize("offload", ["cpu", "disk"])
@pytest.mark.parametrize("mode", ["block", "channel"])
def test_offloaded_gradients_are_the_same_and_the_weights_stay_where_they_wait(tmp_path: Path, offload, mode):
    dense, elsewhere = tiny_model("llama").model, tiny_model("llama", offload=offload, cache_dir=tmp_path).model
    expected = calibration_gradients(dense, batch(), group_weights(dense, mode), second_order=True)
    before = {name: p.data_ptr() for name, p in elsewhere.named_parameters()}
    got = calibration_gradients(elsewhere, batch(), group_weights(elsewhere, mode), second_order=True)
    assert [torch.equal(a, b) for a, b in zip(got.grad.values(), expected.grad.values(), strict=True)] == [True] * len(
        expected.grad
    )
    assert all(torch.equal(a, b) for a, b in zip(got.fisher.values(), expected.fisher.values(), strict=True))
    assert {name: p.data_ptr() for name, p in elsewhere.named_parameters()} == before
    folder = offloader_of(elsewhere).folder
    assert folder is None or unmapped(dict(elsewhere.named_parameters()), folder) == []


def test_each_layer_is_onloaded_once_forward_and_once_backward_from_the_lowest_scored_layer(tmp_path, monkeypatch):
    model = tiny_model("llama", offload="disk", cache_dir=tmp_path, num_hidden_layers=4).model
    turns, onloaded = [], Offloader.onloaded

    def spy(self, layer, index, changed):
        turns.append((index, changed))
        return onloaded(self, layer, index, changed)

    monkeypatch.setattr(Offloader, "onloaded", spy)
    calibration_gradients(model, batch(), group_weights(model, "block"), second_order=False)  # layer 1 scored
    assert turns == [(0, False), (1, False), (2, False), (3, False), (3, False), (2, False), (1, False)]


@pytest.mark.parametrize("mode", ["block", "channel"])
def test_each_weights_final_gradient_is_handed_over_once_and_dropped(mode):
    model = tiny_model("llama").model
    params = group_weights(model, mode)
    expected = calibration_gradients(model, batch(), params, second_order=True)
    handed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def complete(done, gradients):
        assert not {id(p) for p in done} & handed.keys() and gradients.grad.keys() == {id(p) for p in done}
        handed.update({id(p): (gradients.grad[id(p)], gradients.fisher[id(p)]) for p in done})

    left = calibration_gradients(model, batch(), params, second_order=True, complete=complete)
    assert left.grad == {} and left.fisher == {} and handed.keys() == expected.grad.keys()
    assert all(torch.equal(g, expected.grad[k]) and torch.equal(f, expected.fisher[k]) for k, (g, f) in handed.items())
