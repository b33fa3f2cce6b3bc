"""LLM-Pruner structural pruning on tiny random LLaMA (GQA 4/2 heads) and GPT-2 models."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from prunesweep.config.schema import ModelConfig
from prunesweep.models.architecture import architecture_of
from prunesweep.models.groups import Group, Slice, remove_units
from prunesweep.models.loader import load_model
from prunesweep.models.params import count_params
from prunesweep.models.surgery import channel_axis
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.structural.gradients import Gradients, calibration_gradients
from prunesweep.pruning.structural.importance import aggregate, member_scores
from prunesweep.pruning.structural.llm_pruner import default_layer_range
from prunesweep.util.errors import PrunesweepError
from tests.compose import make_pruner

TINY = {
    "llama": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    ),
    "gpt2": dict(n_embd=64, n_layer=3, n_head=4, n_positions=512),
}
ARCHS = list(TINY)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models gain nothing from threads, and on shared, busy cores OpenMP barriers make them 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(arch: str):
    cfg = ModelConfig(name=f"tiny_{arch}", source="random", architecture=arch, random_config=TINY[arch])
    return load_model(OmegaConf.structured(cfg), cache_dir="unused", seed=0)


def probe(n: int = 2, length: int = 24, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 250, (n, length), generator=torch.Generator().manual_seed(seed))


def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


def context(tokenizer, seed: int = 0) -> PruneContext:
    return PruneContext(tokenizer, calibration=lambda: probe(4, 32, seed=7), seed=seed)


def llm_pruner(**kw):
    return make_pruner("llm_pruner", **kw)


# ---------------------------------------------------------------- brute force: zeroing a group == removing it


def zero_units(group: Group, units: list[int]) -> None:
    with torch.no_grad():
        for s in group.slices:
            index = torch.tensor(s.channels(units))
            s.module.weight.index_fill_(channel_axis(s.module, s.kind), index, 0.0)
            bias = getattr(s.module, "bias", None)
            if isinstance(bias, torch.Tensor) and (s.kind == "out" or s.module.weight.dim() == 1):
                bias.index_fill_(0, index, 0.0)


def normalise_over(keep: torch.Tensor):
    """Forward hook: a norm over the kept hidden dims only (what the pruned model computes), zeros elsewhere."""

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        x = args[0][..., keep]
        if isinstance(module, nn.LayerNorm):
            y = F.layer_norm(x, (len(keep),), module.weight[keep], module.bias[keep], module.eps)
        else:  # RMSNorm
            y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.variance_epsilon) * module.weight[keep]
        full = torch.zeros_like(out)
        full[..., keep] = y
        return full

    return hook


def groups_of(model, arch_name: str) -> list[tuple[str, int | None]]:
    arch = architecture_of(model)
    kinds = [("attention:kv_group", i) for i in range(len(arch.layers(model)))]
    kinds += [("mlp", i) for i in range(len(arch.layers(model)))]
    if arch_name == "llama":
        kinds += [("attention:head", i) for i in range(len(arch.layers(model)))]
    return [*kinds, ("hidden", None)]


def build_group(model, kind: str, index: int | None) -> Group:
    arch = architecture_of(model)
    if kind.startswith("attention"):
        return arch.attention_group(model, index, kind.split(":")[1])
    return arch.mlp_group(model, index) if kind == "mlp" else arch.hidden_group(model)


def some_units(group: Group) -> list[int]:
    """A spread of removable units that respects the group's constraints (blocks, step)."""
    per_block = group.n_units // group.blocks
    picked = [u for u in range(per_block) if u % 3 == 1][: group.max_steps * group.step]
    picked = picked[: len(picked) // group.step * group.step] or list(range(group.step))
    return [b * per_block + u for b in range(group.blocks) for u in picked]


@pytest.mark.parametrize("arch_name", ARCHS)
def test_removing_a_group_equals_zeroing_it_in_the_dense_model(arch_name):
    dense = tiny(arch_name).model
    ids = probe()
    for kind, index in groups_of(dense, arch_name):
        zeroed, pruned = copy.deepcopy(dense), copy.deepcopy(dense)
        units = some_units(build_group(dense, kind, index))
        group = build_group(zeroed, kind, index)
        zero_units(group, units)
        if kind == "hidden":  # norms see fewer dims after removal: restrict the dense norms the same way
            keep = torch.tensor(sorted(set(range(group.n_units)) - set(units)))
            for s in group.slices:
                if s.module.weight.dim() == 1:
                    s.module.register_forward_hook(normalise_over(keep))
        remove_units([(build_group(pruned, kind, index), units)])
        architecture_of(pruned).sync(pruned)
        assert count_params(pruned)[0] < count_params(dense)[0], (kind, index)
        torch.testing.assert_close(
            logits(pruned, ids), logits(zeroed, ids), atol=2e-5, rtol=1e-4, msg=f"{kind} {index}"
        )


# ---------------------------------------------------------------- rate semantics


@pytest.mark.parametrize("arch_name", ARCHS)
@pytest.mark.parametrize("mode", ["block", "channel"])
def test_iterative_targets_are_parameter_fractions_of_the_dense_model(arch_name, mode):
    loaded = tiny(arch_name)
    model, dense = loaded.model, count_params(loaded.model)[0]
    pruner = llm_pruner(mode=mode)
    pruner.check(model)
    hidden = architecture_of(model).hidden_group(model)
    # channel mode removes whole steps of hidden dims: half a step is the finest it can hit
    tolerance = 0.002 if mode == "block" else hidden.units_per_step * hidden.unit_params / dense / 2
    previous = dense
    for target in (0.05, 0.1, 0.2):
        result = pruner.prune_to(model, target, context(loaded.tokenizer))
        params = count_params(model)[0]
        assert result.requested == target
        assert result.achieved == pytest.approx(1 - params / dense)
        assert abs(result.achieved - target) <= tolerance, (target, result.details)
        assert params < previous and result.details["dense_params"] == dense
        previous = params
    assert torch.isfinite(logits(model, probe())).all()


def test_block_mode_keeps_first_and_last_layers_and_gqa_consistent():
    loaded = tiny("llama")
    model = loaded.model
    before = architecture_of(model).structure(model)
    result = llm_pruner(attention_unit="head").prune_to(model, 0.25, context(loaded.tokenizer))
    after = architecture_of(model).structure(model)
    assert (result.details["layer_start"], result.details["layer_end"]) == (1, 3) == default_layer_range(4)
    assert after.layers[0] == before.layers[0] and after.layers[-1] == before.layers[-1]
    for layer, shape in zip(model.model.layers[1:3], after.layers[1:3], strict=True):
        assert shape.num_kv_heads == 2 and shape.num_heads == 2  # one query head left per KV group
        assert layer.self_attn.num_key_value_groups == 1
        assert shape.intermediate_size < 128


def test_global_ranking_may_cut_layers_unevenly_at_the_same_rate():
    loaded = tiny("llama")
    model = loaded.model
    result = llm_pruner(global_ranking=True, layer_start=0, layer_end=4).prune_to(model, 0.3, context(loaded.tokenizer))
    widths = {shape.intermediate_size for shape in architecture_of(model).structure(model).layers}
    assert abs(result.achieved - 0.3) < 0.002 and len(widths) > 1


def test_default_layer_range_scales_the_papers_setting():
    assert default_layer_range(32) == (4, 30)  # LLaMA-7B in the paper
    assert default_layer_range(30) == (4, 28)  # SmolLM2-135M
    assert default_layer_range(3) == (1, 2)


# ---------------------------------------------------------------- importance


def test_member_scores_follow_the_paper_definitions():
    linear = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
    grad = {id(linear.weight): torch.tensor([[1.0, 1.0], [1.0, 0.0]])}
    fisher = {id(linear.weight): torch.tensor([[2.0, 2.0], [0.0, 4.0]])}
    gradients, member = Gradients(grad, fisher), Slice(linear, "out")
    scores = {imp: member_scores(member, 2, imp, gradients).tolist() for imp in ("l2", "vector", "element1")}
    assert scores == {"l2": [2.0, 4.25], "vector": [0.0, 2.0], "element1": [2.0, 2.0]}
    assert member_scores(member, 2, "element2", gradients).tolist() == [2.0, 0.5]  # |w^2 F / 2|
    assert member_scores(member, 2, "element1+2", gradients).tolist() == [2.0, 2.5]  # sum |w g - w^2 F / 2|
    columns = member_scores(Slice(linear, "in"), 2, "element1", gradients)
    assert columns.tolist() == [3.0, 1.0]


def test_aggregations():
    members = torch.tensor([[1.0, 4.0], [3.0, 1.0], [0.0, 2.0]])
    assert aggregate(members, "sum").argmin() == 0 and aggregate(members, "max").tolist() == [3.0, 4.0]
    assert aggregate(members, "mean").tolist() == pytest.approx([4 / 3, 7 / 3])
    assert aggregate(members, "last").tolist() == [0.0, 2.0]
    assert aggregate(members, "prod").argmin() == 0  # log-space product: ranks like the product


def test_second_order_pass_gives_the_batch_gradient_and_a_fisher_diagonal():
    model = tiny("llama").model
    params = [model.model.layers[1].mlp.down_proj.weight]
    batch = probe(4, 32, seed=3)
    first = calibration_gradients(model, batch, params, second_order=False)
    both = calibration_gradients(model, batch, params, second_order=True)
    key = id(params[0])
    torch.testing.assert_close(both.grad[key], first.grad[key], atol=1e-7, rtol=1e-4)
    assert first.fisher is None and (both.fisher[key] >= 0).all() and both.fisher[key].sum() > 0
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_bfloat16_model_gets_fp32_gradients_and_stays_bfloat16():
    loaded = tiny("llama")
    model = loaded.model.to(torch.bfloat16)
    result = llm_pruner(importance="element1+2").prune_to(model, 0.2, context(loaded.tokenizer))
    assert abs(result.achieved - 0.2) < 0.002
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert torch.isfinite(logits(model, probe())).all()


@pytest.mark.parametrize(
    "arch, importance", [("llama", "element1"), ("llama", "random"), ("llama", "element1+2"), ("gpt2", "element1")]
)
def test_same_seed_same_pruned_model(arch, importance):
    outs = []
    for _ in range(2):
        loaded = tiny(arch)
        llm_pruner(importance=importance).prune_to(loaded.model, 0.2, context(loaded.tokenizer, seed=3))
        outs.append((architecture_of(loaded.model).structure(loaded.model), logits(loaded.model, probe())))
    assert outs[0][0] == outs[1][0]
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=0, rtol=0)


def test_one_shot_cells_share_the_importance_through_the_memo():
    cache: dict[str, dict[str, torch.Tensor]] = {}
    calls = []

    def memo(name, compute):
        if name not in cache:
            calls.append(name)
            cache[name] = compute()
        return cache[name]

    for rate in (0.1, 0.2):  # two cells of a one-shot grid, both starting from the dense model
        loaded = tiny("llama")
        ctx = PruneContext(loaded.tokenizer, calibration=lambda: probe(4, 32, seed=7), memo=memo)
        llm_pruner().prune_to(loaded.model, rate, ctx)
    llm_pruner().prune_to(loaded.model, 0.3, ctx)  # an iterative step from a pruned model: fresh scores
    assert len(calls) == 2


def test_importance_decides_which_units_go():
    pruned = {}
    for importance in ("element1", "l2", "random"):
        loaded = tiny("llama")
        llm_pruner(importance=importance, prune_attention=False).prune_to(loaded.model, 0.1, context(loaded.tokenizer))
        pruned[importance] = loaded.model.model.layers[1].mlp.down_proj.weight.clone()
    assert len({tuple(w.flatten()[:64].tolist()) for w in pruned.values()}) == 3


# ---------------------------------------------------------------- one clear line for bad input


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"importance": "taylor"}, "pruner.importance"),
        ({"aggregation": "median"}, "pruner.aggregation"),
        ({"mode": "layer"}, "pruner.mode"),
        ({"attention_unit": "qk"}, "pruner.attention_unit"),
        ({"prune_attention": False, "prune_mlp": False}, "prunes nothing"),
    ],
)
def test_bad_settings_fail_at_construction(kw, match):
    with pytest.raises(PrunesweepError, match=match):
        llm_pruner(**kw)


def test_unsupported_model_layer_range_and_unreachable_rate_fail_clearly():
    with pytest.raises(PrunesweepError, match="supports the llama, gpt2 families"):
        llm_pruner().check(nn.Sequential(nn.Linear(2, 2)))
    loaded = tiny("llama")
    with pytest.raises(PrunesweepError, match="layers"):
        llm_pruner(layer_start=3, layer_end=9).check(loaded.model)
    with pytest.raises(PrunesweepError, match="out of reach"):
        llm_pruner().prune_to(loaded.model, 0.9, context(loaded.tokenizer))


@pytest.mark.parametrize("arch_name", ARCHS)
def test_grouping_none_prunes_each_matrix_on_its_own_importance(arch_name):
    """Table 5's "w/o dependency": each MLP matrix keeps its own highest-scored channels, as many as the coupled
    plan keeps; the model still runs (same shapes and size) but computes something else."""
    loaded = tiny(arch_name)
    model, ctx = loaded.model, context(loaded.tokenizer)
    arch = architecture_of(model)
    coupled = copy.deepcopy(model)
    pruner = llm_pruner(grouping="none", importance="l2", prune_attention=False)
    group = arch.mlp_group(model, pruner.layer_range(len(arch.layers(model)))[0])
    weights = [s.module.weight.detach().clone() for s in group.slices]
    own_scores = [member_scores(s, group.n_units, "l2", None) for s in group.slices]
    result = pruner.prune_to(model, 0.1, ctx)
    llm_pruner(importance="l2", prune_attention=False).prune_to(coupled, 0.1, ctx)
    assert result.details["grouping"] == "none"
    assert count_params(model) == count_params(coupled) and architecture_of(model).structure(model) == arch.structure(
        coupled
    )
    kept = []
    for s, weight, scores in zip(group.slices, weights, own_scores, strict=True):
        axis = channel_axis(s.module, s.kind)
        removed = group.n_units - s.module.weight.shape[axis]
        keep = scores.argsort(stable=True)[removed:].sort().values
        assert removed > 0 and torch.equal(s.module.weight.detach(), weight.index_select(axis, keep))
        kept.append(tuple(keep.tolist()))
    assert len(set(kept)) > 1  # the members disagree: the coupling is broken
    out = logits(model, probe())
    assert torch.isfinite(out).all() and not torch.allclose(out, logits(coupled, probe()))
