"""Wanda, SparseGPT and N:M masks on the tiny models: SparseGPT equals textbook OBS, masks hold exactly, dense
statistics are reusable across rates, and SparseGPT's update lowers the layer's reconstruction error."""

from __future__ import annotations

import copy

import pytest
import torch

from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning.calibration import dense_statistics
from prunesweep.pruning.nm import magnitude_nm_, parse_pattern
from prunesweep.pruning.sparsegpt import SparseGPT, prune_sparsegpt, sparsegpt_prune_weight
from prunesweep.pruning.wanda import prune_wanda
from prunesweep.util.errors import PrunesweepError
from tests.calibration_inputs import calibration_ids, linear_input
from tests.models import tiny_model


def textbook_obs(weight, hessian, rate, pattern, blocksize, percdamp=0.01):
    """Direct OBS in float64: full inverse Hessian, one column at a time, no Cholesky, no lazy updates.

    Column q's saliency w_q^2 / [H_F^-1]_qq uses the inverse Hessian H_F^-1 of the columns F = q.. still to
    process; masks are chosen for a whole block (unstructured) or N:M group at its first column."""
    W, H = weight.double().clone(), hessian.double().clone()
    H += percdamp * torch.diag(H).mean() * torch.eye(H.shape[0], dtype=H.dtype)
    columns = W.shape[1]
    nm = parse_pattern(pattern)
    # [H_F^-1]_qq for every q, by removing the columns one after the other from H^-1 (Schur complement)
    Hinv, saliency_denominator = torch.linalg.inv(H), torch.zeros(columns, dtype=H.dtype)
    for q in range(columns):
        saliency_denominator[q] = Hinv[q, q]
        Hinv = Hinv - torch.outer(Hinv[:, q], Hinv[q, :]) / Hinv[q, q]
    Hinv, mask = torch.linalg.inv(H), torch.zeros_like(W, dtype=torch.bool)
    for q in range(columns):
        group = blocksize if nm is None else nm.m
        if q % group == 0:
            cols = slice(q, q + group)
            saliency = W[:, cols] ** 2 / saliency_denominator[cols]
            block = torch.zeros_like(saliency, dtype=torch.bool)
            if nm is None:
                block.view(-1)[saliency.flatten().argsort()[: round(rate * saliency.numel())]] = True
            else:
                block.scatter_(1, saliency.argsort(dim=1)[:, : nm.m - nm.n], True)
            mask[:, cols] = block
        rows = mask[:, q]
        W[rows, q:] -= torch.outer(W[rows, q] / Hinv[q, q], Hinv[q, q:])  # OBS update of the remaining weights
        W[rows, q] = 0.0  # exactly (the update leaves rounding noise)
        Hinv = Hinv - torch.outer(Hinv[:, q], Hinv[q, :]) / Hinv[q, q]  # remove q from H^-1
    return W


def _layer_linear(model, index, name):
    arch = require_architecture(model)
    return arch.linears(arch.layers(model)[index])[name]


@pytest.mark.parametrize(
    ("rate", "pattern", "blocksize"),
    [(0.5, "unstructured", 64), (0.5, "unstructured", 16), (0.3, "unstructured", 16), (None, "2:4", 16)],
)
def test_sparsegpt_equals_textbook_obs(rate, pattern, blocksize):
    model = tiny_model("llama").model
    ids = calibration_ids(model)
    linear = _layer_linear(model, 1, "self_attn.q_proj")  # 64 inputs
    x = linear_input(model, linear, ids)
    hessian = 2 * x.T @ x / ids.shape[0]
    weight = out_in_weight(linear).detach().double()
    ours = sparsegpt_prune_weight(weight, hessian, rate, pattern, blocksize=blocksize)
    expected = textbook_obs(weight, hessian, rate, pattern, blocksize)
    assert torch.equal(ours == 0, expected == 0)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-4)
    assert not torch.allclose(ours, weight * (ours != 0))  # the kept weights were updated, not just masked


def _prune(method, model, ids, pattern):
    if method == "magnitude":
        nm = parse_pattern(pattern)
        arch = require_architecture(model)
        for layer in arch.layers(model):
            for module in arch.linears(layer).values():
                magnitude_nm_(out_in_weight(module), nm.n, nm.m)
    else:
        {"wanda": prune_wanda, "sparsegpt": prune_sparsegpt}[method](model, ids, None, pattern)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "magnitude"])
def test_nm_masks_hold_exactly(arch, pattern, method):
    model = tiny_model(arch).model
    embeddings = model.get_input_embeddings().weight.clone()
    _prune(method, model, calibration_ids(model), pattern)
    nm = parse_pattern(pattern)
    adapter = require_architecture(model)
    for layer in adapter.layers(model):
        for name, module in adapter.linears(layer).items():
            weight = out_in_weight(module)
            nonzero_per_group = (weight != 0).reshape(weight.shape[0], -1, nm.m).sum(-1)
            assert (nonzero_per_group == nm.n).all(), name  # random weights: exactly m - n zeros per group
    assert torch.equal(model.get_input_embeddings().weight, embeddings)


@pytest.mark.parametrize("mode", ["dense", "sequential"])
def test_wanda_unstructured_prunes_each_row_by_weight_times_input_norm(mode):
    model = tiny_model("llama").model
    original = copy.deepcopy(model)
    ids = calibration_ids(model)
    rate = 0.3
    result = prune_wanda(model, ids, rate, mode=mode)
    adapter = require_architecture(model)
    for layer in adapter.layers(model):
        for module in adapter.linears(layer).values():
            weight = out_in_weight(module)
            assert ((weight == 0).sum(1) == round(rate * weight.shape[1])).all()
    # layer 2's q_proj input depends only on layers 0-1: in sequential mode on their *pruned* versions
    source = original if mode == "dense" else model
    x = linear_input(source, _layer_linear(source, 2, "self_attn.q_proj"), ids)
    weight = out_in_weight(_layer_linear(original, 2, "self_attn.q_proj")).double()
    scores = weight.abs() * x.norm(dim=0)
    lowest = scores.argsort(dim=1)[:, : round(rate * weight.shape[1])]
    expected = torch.zeros_like(scores, dtype=torch.bool).scatter(1, lowest, True)
    assert torch.equal(out_in_weight(_layer_linear(model, 2, "self_attn.q_proj")) == 0, expected)
    assert (
        result.prunable_params == sum(m.weight.numel() for m in adapter.linears(adapter.layers(model)[0]).values()) * 4
    )
    assert result.achieved == pytest.approx(round(rate * 64) / 64 * 0.5 + round(rate * 128) / 128 * 0.5)


@pytest.mark.parametrize("prune", [prune_wanda, prune_sparsegpt])
def test_dense_statistics_computed_once_reproduce_dense_mode_at_two_rates(prune):
    model = tiny_model("gpt2").model
    ids = calibration_ids(model)
    stats = dense_statistics(model, ids, ("scaler_row", "hessian"))
    kept = {key: tensor.clone() for key, tensor in stats.items()}
    for rate in (0.3, 0.6):
        fresh, reused = copy.deepcopy(model), copy.deepcopy(model)
        prune(fresh, ids, rate, mode="dense")
        result = prune(reused, None, rate, mode="dense", stats=stats)
        assert result.achieved == pytest.approx(rate, abs=0.01)
        for (name, a), b in zip(fresh.state_dict().items(), reused.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
    assert all(torch.equal(stats[key], kept[key]) for key in kept)  # pruning must not alter a cached entry


def test_sequential_and_dense_modes_prune_differently_after_layer_0():
    model = tiny_model("llama").model
    ids = calibration_ids(model)
    sequential, dense = copy.deepcopy(model), copy.deepcopy(model)
    prune_sparsegpt(sequential, ids, 0.5, mode="sequential")
    prune_sparsegpt(dense, ids, 0.5, mode="dense")
    assert torch.equal(
        out_in_weight(_layer_linear(sequential, 0, "self_attn.q_proj")),
        out_in_weight(_layer_linear(dense, 0, "self_attn.q_proj")),
    )
    assert not torch.equal(
        out_in_weight(_layer_linear(sequential, 2, "self_attn.q_proj")),
        out_in_weight(_layer_linear(dense, 2, "self_attn.q_proj")),
    )


@pytest.mark.parametrize("prune", [prune_wanda, prune_sparsegpt])
def test_layer_rates_set_each_layers_sparsity(prune):
    model = tiny_model("llama").model
    layer_rates = [0.2, 0.4, 0.6, 0.8]
    result = prune(model, calibration_ids(model), None, layer_rates=layer_rates)
    assert result.layer_sparsity == pytest.approx(layer_rates, abs=0.01)
    assert result.achieved == pytest.approx(sum(layer_rates) / 4, abs=0.01)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_sparsegpt_has_the_lowest_reconstruction_error(arch):
    model = tiny_model(arch).model
    ids = calibration_ids(model)
    adapter = require_architecture(model)
    for name, linear in adapter.linears(adapter.layers(model)[1]).items():
        x = linear_input(model, linear, ids)
        weight = out_in_weight(linear).detach().double()
        sparsegpt = sparsegpt_prune_weight(weight, 2 * x.T @ x / ids.shape[0], 0.5)
        magnitude = weight * (weight.abs() > weight.abs().flatten().median())
        wanda_scores = weight.abs() * x.norm(dim=0)
        wanda = weight * (wanda_scores > wanda_scores.median(dim=1, keepdim=True).values)

        def error(pruned, x=x, weight=weight):
            return torch.linalg.norm(x @ weight.T - x @ pruned.T).item()

        assert (sparsegpt == 0).double().mean().item() == pytest.approx(0.5)
        assert error(sparsegpt) <= error(weight * (sparsegpt != 0)), name  # the OBS update beats its bare mask
        assert error(sparsegpt) < min(error(wanda), error(magnitude)), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "4:2"}, "0 < N < M"),
        ({"pattern": "2-4"}, "neither"),
        ({"pattern": "3:5", "rate": None, "blocksize": 10}, "layer 0 self_attn.q_proj has 64 inputs"),
        ({"pattern": "2:4", "rate": 0.3}, "implies sparsity 0.5"),
        ({"pattern": "2:4", "rate": None, "layer_rates": [0.5] * 4}, "unstructured"),
        ({"layer_rates": [0.5] * 3}, "3 layer_rates"),
        ({"rate": 1.0}, r"\[0, 1\)"),
        ({"mode": "greedy"}, "mode"),
        ({"stats": {}}, "mode='dense'"),
        ({"mode": "dense", "stats": {}}, "missing"),
        ({"calibration_ids": torch.zeros(2, 4)}, "LongTensor"),
        ({"pattern": "4:8", "rate": None, "blocksize": 12}, "multiple of M"),
    ],
)
def test_bad_inputs_fail_before_any_pruning(kwargs, message):
    model = tiny_model("llama").model
    before = copy.deepcopy(model.state_dict())
    call = {"calibration_ids": calibration_ids(model), "rate": 0.5, **kwargs}
    method = SparseGPT(blocksize=call.pop("blocksize", 128))
    with pytest.raises(PrunesweepError, match=message):
        method(model, **call)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bfloat16_model_gets_float32_statistics_and_exact_patterns():
    model = tiny_model("llama").model.to(torch.bfloat16)
    ids = calibration_ids(model)
    stats = dense_statistics(model, ids, SparseGPT.kinds)
    assert {tensor.dtype for tensor in stats.values()} == {torch.float32}
    prune_sparsegpt(model, None, None, "2:4", mode="dense", stats=stats)
    adapter = require_architecture(model)
    for layer in adapter.layers(model):
        for module in adapter.linears(layer).values():
            assert module.weight.dtype == torch.bfloat16
            assert ((module.weight != 0).reshape(module.weight.shape[0], -1, 4).sum(-1) == 2).all()
