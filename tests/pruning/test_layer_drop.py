"""ShortGPT depth pruning: block influence, physical layer removal, reload, KV cache after removal."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM

from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning.layer_drop import block_influence, drop_layers, layer_drop, layers_to_drop, lowest_influence
from prunesweep.util.errors import PrunesweepError
from tests.models import tiny_model

ARCHS = ("llama", "gpt2")


def calibration(n: int = 4, seq: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 250, (n, seq), generator=torch.Generator().manual_seed(seed))


def make_identity(model: nn.Module, index: int) -> None:
    """Zero the layer's output projections (and their biases): the layer then returns its input."""
    layer = require_architecture(model).layers(model)[index]
    names = ("self_attn.o_proj", "mlp.down_proj") if hasattr(layer, "self_attn") else ("attn.c_proj", "mlp.c_proj")
    with torch.no_grad():
        for name in names:
            module = layer.get_submodule(name)
            out_in_weight(module).zero_()
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()


def final_norm_off(model: nn.Module) -> nn.Module:
    """A copy whose last hidden state is the raw last-layer output (HF applies the final norm to it)."""
    copied = copy.deepcopy(model)
    if hasattr(copied, "transformer"):
        copied.transformer.ln_f = nn.Identity()
    else:
        copied.model.norm = nn.Identity()
    return copied


@pytest.mark.parametrize("arch", ARCHS)
def test_block_influence_matches_hidden_states(arch: str) -> None:
    model = tiny_model(arch).model
    ids = calibration()
    hidden = final_norm_off(model)(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states
    expected = [1 - F.cosine_similarity(a, b, dim=-1).mean().item() for a, b in itertools.pairwise(hidden)]
    assert block_influence(model, ids, batch_size=3).tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_identity_layer_has_lowest_influence_and_goes_first(arch: str) -> None:
    model = tiny_model(arch).model
    make_identity(model, 1)
    scores = block_influence(model, calibration())
    assert scores[1].item() == pytest.approx(0.0, abs=1e-6)
    assert int(scores.argmin()) == 1 and (scores[[0, 2]] > 1e-3).all()
    removed, _ = layer_drop(model, calibration(), rate=0.25)  # 4 llama layers -> 1; 3 gpt2 layers -> 1
    assert removed == [1]


@pytest.mark.parametrize("arch", ARCHS)
def test_dropped_model_reloads_with_identical_logits(arch: str, tmp_path) -> None:
    loaded = tiny_model(arch)
    model = loaded.model
    n_layers = len(require_architecture(model).layers(model))
    drop_layers(model, [0, n_layers - 1])
    ids = calibration(2, 16)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
    model.save_pretrained(tmp_path, safe_serialization=True)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert len(require_architecture(reloaded).layers(reloaded)) == n_layers - 2
    assert reloaded.config.num_hidden_layers == n_layers - 2
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids, use_cache=False).logits, logits, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_drop_keeps_surviving_layers_and_renumbers_cache_slots(arch: str) -> None:
    model = tiny_model(arch).model
    arch_ = require_architecture(model)
    survivors = [layer for i, layer in enumerate(arch_.layers(model)) if i != 0]
    drop_layers(model, [0])
    assert list(arch_.layers(model)) == survivors
    assert [arch_.attentions(layer)[0].layer_idx for layer in survivors] == list(range(len(survivors)))


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_generation_after_drop_matches_uncached(arch: str) -> None:
    loaded = tiny_model(arch)
    model = loaded.model
    drop_layers(model, [0])
    prompt = calibration(1, 8)
    settings = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": loaded.tokenizer.pad_token_id}
    with torch.no_grad():
        cached = model.generate(prompt, use_cache=True, **settings)
        uncached = model.generate(prompt, use_cache=False, **settings)
    assert cached.shape == (1, 14) and torch.equal(cached, uncached)


def test_layer_types_follow_the_dropped_layers() -> None:
    model = tiny_model("llama").model
    model.config.layer_types = ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]
    drop_layers(model, [1, 2])
    assert model.config.layer_types == ["full_attention", "sliding_attention"]


def test_layers_to_drop_rounds_half_up_and_refuses_emptying_the_model() -> None:
    assert layers_to_drop(30, 1 / 8) == 4 and layers_to_drop(30, 1 / 4) == 8 and layers_to_drop(4, 1 / 8) == 1
    assert layers_to_drop(4, 0.0) == 0
    for rate in (0.9, 1.0, -0.1):
        with pytest.raises(PrunesweepError):
            layers_to_drop(4, rate)
    with pytest.raises(PrunesweepError):
        layers_to_drop(4, 0.7, keep_first=True, keep_last=True)  # 3 of the 2 droppable layers


def test_layer_drop_refuses_removing_all_layers_before_any_forward() -> None:
    model = tiny_model("llama").model
    with pytest.raises(PrunesweepError, match="removes 4 of 4"):
        layer_drop(model, torch.empty(0, dtype=torch.long), rate=0.9)
    assert len(require_architecture(model).layers(model)) == 4


def test_lowest_influence_respects_kept_end_layers() -> None:
    scores = torch.tensor([0.01, 0.5, 0.2, 0.02])
    assert lowest_influence(scores, 2) == [0, 3]
    assert lowest_influence(scores, 2, keep_first=True, keep_last=True) == [1, 2]
    assert lowest_influence(scores, 1, keep_first=True) == [3]


def test_drop_layers_rejects_bad_indices() -> None:
    model = tiny_model("llama").model
    for indices in ([4], [1, 1], [-1], [0, 1, 2, 3]):
        with pytest.raises(PrunesweepError):
            drop_layers(model, indices)
    assert len(require_architecture(model).layers(model)) == 4


def test_gpt2_with_layer_index_scaling_cannot_drop_layers() -> None:
    model = tiny_model("gpt2").model
    model.config.scale_attn_by_inverse_layer_idx = True  # a reload would scale attention by the new index
    with pytest.raises(PrunesweepError, match="scale_attn_by_inverse_layer_idx"):
        layer_drop(model, calibration(), rate=0.3)
