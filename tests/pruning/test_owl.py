"""OWL: activation statistics, per-layer outlier ratios, and the official ratio -> sparsity mapping."""

from __future__ import annotations

import pytest
import torch

from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning.owl import activation_norms, outlier_ratios, owl_layer_rates, owl_rates
from prunesweep.util.errors import PrunesweepError
from tests.models import tiny_model


def calibration(n: int = 3, seq: int = 20) -> torch.Tensor:
    return torch.randint(3, 250, (n, seq), generator=torch.Generator().manual_seed(1))


def layer0_attention_input(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The input of layer 0's first linear, computed by hand from the embeddings (no hooks)."""
    if hasattr(model, "transformer"):
        body = model.transformer
        positions = torch.arange(ids.shape[1])
        return body.h[0].ln_1(body.wte(ids) + body.wpe(positions))
    return model.model.layers[0].input_layernorm(model.model.embed_tokens(ids))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_activation_norms_match_a_manual_forward(arch: str) -> None:
    model = tiny_model(arch).model
    ids = calibration()
    norms = activation_norms(model, ids, batch_size=2)
    adapter = require_architecture(model)
    expected_keys = {f"{i}.{name}" for i, layer in enumerate(adapter.layers(model)) for name in adapter.linears(layer)}
    assert set(norms) == expected_keys
    with torch.no_grad():
        x = layer0_attention_input(model, ids)
    first = next(iter(adapter.linears(adapter.layers(model)[0])))
    assert torch.allclose(norms[f"0.{first}"], x.pow(2).sum(dim=(0, 1)), rtol=1e-5)
    assert all(v.dtype == torch.float32 and (v > 0).all() for v in norms.values())


def test_outlier_ratio_of_a_hand_built_layer() -> None:
    model = tiny_model("llama").model
    adapter = require_architecture(model)
    layers = adapter.layers(model)
    norms = {}
    with torch.no_grad():
        for index, layer in enumerate(layers):
            for name, linear in adapter.linears(layer).items():
                out_in_weight(linear).fill_(1.0)
                norms[f"{index}.{name}"] = torch.full((out_in_weight(linear).shape[1],), 4.0)  # ||X|| = 2
        # layer 2: ten weights 100x larger -> scores 200 vs 2; mean ~2 + 1980/N, so m=5 catches exactly those
        out_in_weight(adapter.linears(layers[2])["mlp.up_proj"]).view(-1)[:10] = 100.0
    n_weights = sum(out_in_weight(linear).numel() for linear in adapter.linears(layers[2]).values())
    ratios = outlier_ratios(model, norms, m=5.0)
    assert ratios.tolist() == [0.0, 0.0, pytest.approx(10 / n_weights), 0.0]


def test_outlier_ratios_need_every_linear() -> None:
    model = tiny_model("llama").model
    norms = activation_norms(model, calibration())
    del norms["1.mlp.down_proj"]
    with pytest.raises(PrunesweepError, match=r"1\.mlp\.down_proj"):
        outlier_ratios(model, norms)


def test_layer_rates_follow_the_official_mapping() -> None:
    ratios = torch.tensor([0.01, 0.03, 0.02, 0.05, 0.04], dtype=torch.float64)
    rates = owl_layer_rates(ratios, rate=0.7, lam=0.08)
    # official: scaled = (r - min) / (max - min) * 2λ; density = scaled - mean(scaled) + (1 - rate)
    scaled = [(r - 0.01) / 0.04 * 0.16 for r in ratios.tolist()]
    expected = [1 - (s - sum(scaled) / 5 + 0.3) for s in scaled]
    assert rates == pytest.approx(expected, abs=1e-12)
    assert sum(rates) / len(rates) == pytest.approx(0.7, abs=1e-6)
    assert all(0.7 - 0.08 - 1e-12 <= r <= 0.7 + 0.08 + 1e-12 for r in rates)  # scaled mean is 1/2 here: ±λ
    order_by_outliers = sorted(range(5), key=lambda i: ratios[i])
    assert [rates[i] for i in order_by_outliers] == sorted(rates, reverse=True)


def test_layer_rates_span_two_lambda_around_the_target() -> None:
    ratios = torch.tensor([0.002, 0.0021, 0.0019, 0.0023, 0.0150, 0.0024])  # one outlier-heavy layer
    rates = owl_layer_rates(ratios, rate=0.5, lam=0.05)
    assert sum(rates) / len(rates) == pytest.approx(0.5, abs=1e-6)
    assert max(rates) - min(rates) == pytest.approx(0.1, abs=1e-12)
    assert all(0.5 - 0.1 <= r <= 0.5 + 0.1 for r in rates)
    assert min(rates) == rates[4] and rates[4] < 0.5 - 0.05  # the official shift puts it beyond -λ


def test_equal_outlier_ratios_give_uniform_rates() -> None:
    assert owl_layer_rates(torch.full((4,), 0.01), rate=0.6) == [0.6] * 4


@pytest.mark.parametrize(
    "rate,lam,match",
    [(0.0, 0.08, "rate"), (1.0, 0.08, "rate"), (0.5, -0.01, "lambda"), (0.95, 0.08, "outside")],
)
def test_layer_rates_reject_bad_inputs(rate: float, lam: float, match: str) -> None:
    with pytest.raises(PrunesweepError, match=match):
        owl_layer_rates(torch.tensor([0.01, 0.02, 0.05]), rate=rate, lam=lam)


def test_owl_rates_on_a_tiny_model_average_to_the_target() -> None:
    model = tiny_model("llama").model
    rates = owl_rates(model, calibration(), rate=0.7, m=2.0)
    assert len(rates) == 4 and sum(rates) / 4 == pytest.approx(0.7, abs=1e-6)
    with pytest.raises(PrunesweepError, match="m=0"):
        owl_rates(model, calibration(), rate=0.7, m=0)
