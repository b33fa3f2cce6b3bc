"""The layer-wise calibration driver: captured layer inputs replay the model, statistics match a hand-captured
input, sequential statistics see pruned predecessors while dense ones do not."""

from __future__ import annotations

import pytest
import torch

from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning.calibration import (
    advance,
    capture_layer_inputs,
    dense_statistics,
    layer_statistics,
    sequential_calibration,
)
from prunesweep.pruning.wanda import prune_wanda
from prunesweep.util.errors import PrunesweepError
from tests.calibration_inputs import calibration_ids, linear_input
from tests.models import tiny_model

KINDS = ("scaler_row", "hessian")


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_driver_replays_the_model_up_to_the_final_norm(arch):
    model = tiny_model(arch).model
    ids = calibration_ids(model)
    layers = require_architecture(model).layers(model)
    seen = []
    handle = layers[-1].register_forward_hook(lambda _m, _args, out: seen.append(out))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    handle.remove()
    inputs = capture_layer_inputs(model, ids, batch_size=3)  # uneven batches: 3 + 3 + 2
    assert [batch.hidden.shape[0] for batch in inputs] == [3, 3, 2]
    for layer in layers:
        inputs = advance(layer, inputs)
    replayed = torch.cat([batch.hidden for batch in inputs])
    torch.testing.assert_close(replayed, seen[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_dense_statistics_match_a_hand_captured_input(arch):
    model = tiny_model(arch).model
    ids = calibration_ids(model)
    arch_ = require_architecture(model)
    index, (name, linear) = 1, list(arch_.linears(arch_.layers(model)[1]).items())[-1]  # the layer's last linear
    stats = dense_statistics(model, ids, KINDS, batch_size=3)
    x = linear_input(model, linear, ids)
    n_samples = ids.shape[0]
    float32 = {"rtol": 1e-5, "atol": 1e-6}  # running float32 averages vs a float64 sum
    torch.testing.assert_close(stats[f"{index}.{name}.scaler_row"].double(), (x**2).sum(0) / n_samples, **float32)
    torch.testing.assert_close(stats[f"{index}.{name}.hessian"].double(), 2 * x.T @ x / n_samples, **float32)
    in_features = out_in_weight(linear).shape[1]
    assert stats[f"{index}.{name}.hessian"].dtype == torch.float32
    assert stats[f"{index}.{name}.hessian"].shape == (in_features, in_features)


def test_sequential_statistics_equal_dense_on_layer_0_and_differ_after_pruning():
    model = tiny_model("llama").model
    ids = calibration_ids(model)
    dense = dense_statistics(model, ids, KINDS)
    arch = require_architecture(model)
    sequential: dict[int, dict] = {}

    def prune_layer(index, layer, stats):
        sequential[index] = {name: {k: t.clone() for k, t in s.items()} for name, s in stats.items()}
        for name, module in arch.linears(layer).items():
            prune_wanda.prune_linear(module, stats[name], 0.5, None)

    sequential_calibration(model, ids, KINDS, prune_layer)
    assert sorted(sequential) == list(range(len(arch.layers(model))))
    for index, layer in enumerate(arch.layers(model)):
        expected = layer_statistics(dense, index, arch.linears(layer), KINDS)
        for name, stats in sequential[index].items():
            for kind, tensor in stats.items():
                if index == 0:  # collected before anything is pruned
                    assert torch.equal(tensor, expected[name][kind])
                else:  # pruned predecessors change every input
                    assert not torch.allclose(tensor, expected[name][kind], rtol=1e-3), (index, name, kind)


def test_bad_calibration_inputs_fail_with_one_line():
    model = tiny_model("llama").model
    with pytest.raises(PrunesweepError, match="LongTensor"):
        capture_layer_inputs(model, torch.zeros(2, 8))
    with pytest.raises(PrunesweepError, match="not among"):
        dense_statistics(model, calibration_ids(model), ("fisher",))
    arch = require_architecture(model)
    with pytest.raises(PrunesweepError, match="missing"):
        layer_statistics({}, 0, arch.linears(arch.layers(model)[0]), ("hessian",))
