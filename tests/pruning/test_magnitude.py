import pytest
import torch

from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.masks import module_sparsity, prunable_linears, zero_smallest_
from prunesweep.util.errors import PrunesweepError
from tests.compose import make_pruner
from tests.models import tiny_model


def pruner(**kw):
    return make_pruner("magnitude", **kw)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_iterative_targets_are_hit_exactly(arch, scope):
    loaded = tiny_model(arch)
    p = pruner(scope=scope)
    ctx = PruneContext(loaded.tokenizer, calibration=lambda: None)
    for target in (0.1, 0.3, 0.5):
        result = p.prune_to(loaded.model, target, ctx)
        assert result.achieved == pytest.approx(target, abs=1e-3)
        assert module_sparsity(loaded.model, p.cfg.targets) == pytest.approx(target, abs=1e-3)
    if scope == "layer":
        for module in prunable_linears(loaded.model, p.cfg.targets).values():
            assert (module.weight == 0).float().mean().item() == pytest.approx(0.5, abs=1e-3)


def test_embeddings_and_head_untouched_and_smallest_weights_go_first():
    loaded = tiny_model("llama")
    model = loaded.model
    embed_before = model.get_input_embeddings().weight.clone()
    p = pruner()
    layers = prunable_linears(model, p.cfg.targets)
    all_weights = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
    threshold = all_weights.kthvalue(round(0.3 * all_weights.numel())).values
    before = {name: m.weight.detach().clone() for name, m in layers.items()}
    p.prune_to(model, 0.3, PruneContext(loaded.tokenizer, calibration=lambda: None))
    assert torch.equal(model.get_input_embeddings().weight, embed_before)
    for name, module in layers.items():
        zeroed = module.weight == 0
        assert (before[name][zeroed].abs() <= threshold + 1e-7).all()
        assert (before[name][~zeroed].abs() >= threshold - 1e-7).all()


def test_after_update_restores_mask():
    loaded = tiny_model("gpt2")
    p = pruner()
    p.prune_to(loaded.model, 0.5, PruneContext(loaded.tokenizer, calibration=lambda: None))
    with torch.no_grad():
        for module in prunable_linears(loaded.model, p.cfg.targets).values():
            module.weight.add_(0.01)
    assert module_sparsity(loaded.model, p.cfg.targets) == 0.0
    p.after_update(loaded.model)
    assert module_sparsity(loaded.model, p.cfg.targets) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    "kw",
    [
        {"rate": 1.0},
        {"rate": -0.1},
        {"scope": "row"},
        {"_target_": "prunesweep.nope.Nope"},
        {"_target_": "torch.nn.Linear"},
        {"ratee": 0.3},
    ],
)
def test_bad_pruner_settings(kw):
    with pytest.raises(PrunesweepError):
        pruner(**kw)


def test_zero_smallest_matches_a_sort_and_breaks_ties_in_order():
    torch.manual_seed(0)
    weights = [torch.randn(7, 5), torch.randn(3, 11).T, torch.randn(4, 4).half()]  # a transposed view, fp16
    magnitudes = torch.cat([w.abs().float().flatten() for w in weights])
    k = 40
    expected = magnitudes <= magnitudes.sort().values[k - 1]
    zero_smallest_(weights, k)
    zeros = torch.cat([(w == 0).flatten() for w in weights])
    assert int(zeros.sum()) == k and torch.equal(zeros, expected)  # continuous values: no ties

    tied = [torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]]), torch.tensor([[1.0, 3.0]])]
    zero_smallest_(tied, 3)  # the zero, then the first two 1.0s in list order
    assert tied[0].tolist() == [[0.0, 0.0, 1.0], [2.0, 0.0, 1.0]] and tied[1].tolist() == [[1.0, 3.0]]
    with pytest.raises(ValueError):
        zero_smallest_(tied, 9)
