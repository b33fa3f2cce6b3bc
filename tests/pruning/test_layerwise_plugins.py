"""wanda / sparsegpt / owl run as plugins through the runner: patterns, OWL layer rates, shared dense statistics."""

from pathlib import Path

import pytest

from prunesweep.pruning.masks import prunable_linears
from prunesweep.run.cell import run
from tests.compose import compose_config


def cell(tmp: Path, data_dir: str, name: str, *extra: str) -> list[dict]:
    small = [] if "pruner=magnitude" in extra else ["pruner.calibration.n_samples=4", "pruner.calibration.seq_len=32"]
    overrides = ["experiment=smoke", *small, f"paths.data_dir={data_dir}", f"paths.store_dir={tmp}/store", *extra]
    return run(compose_config(overrides), tmp / name)


def final(rows: list[dict]) -> dict:
    return max(rows, key=lambda r: r["step"])


@pytest.mark.parametrize("pruner", ["wanda", "sparsegpt", "owl"])
def test_layerwise_methods_hit_their_rate_through_the_runner(tmp_path, data_dir, pruner):
    rows = cell(tmp_path, data_dir, pruner, f"pruner={pruner}")
    assert final(rows)["achieved_sparsity"] == pytest.approx(0.5, abs=2e-3)
    assert final(rows)["method"] == ("wanda" if pruner == "owl" else pruner)
    if pruner == "owl":  # non-uniform layer rates around the target
        layer_rates = [v for k, v in final(rows).items() if k.startswith("prune_layer_") and k.endswith("_sparsity")]
        assert len(set(round(r, 4) for r in layer_rates)) > 1


@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
def test_nm_pattern_cells_are_exact(tmp_path, data_dir, pattern):
    from prunesweep.store.checkpoint import load_checkpoint

    rows = cell(tmp_path, data_dir, "nm", "pruner=sparsegpt", f"pruner.pattern={pattern}", "schedule=oneshot")
    n, m = map(int, pattern.split(":"))
    model, _ = load_checkpoint(tmp_path / "nm" / "checkpoints" / "step_1")
    for module in prunable_linears(
        model, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    ).values():
        groups = (module.weight != 0).reshape(module.weight.shape[0], -1, m).sum(-1)
        assert int(groups.max()) <= n
    assert final(rows)["achieved_sparsity"] == pytest.approx(1 - n / m, abs=1e-3)
    assert final(rows)["pattern"] == pattern


def test_dense_mode_shares_statistics_across_rates(tmp_path, data_dir):
    dense = ["pruner=wanda", "pruner.calibration.mode=dense", "schedule=oneshot"]
    cell(tmp_path, data_dir, "a", *dense, "pruner.rate=0.3")
    memos = set((tmp_path / "store" / "memo").glob("*.safetensors"))
    cell(tmp_path, data_dir, "b", *dense, "pruner.rate=0.6")
    assert set((tmp_path / "store" / "memo").glob("*.safetensors")) == memos  # reused, not recomputed


def test_owl_with_a_pattern_is_refused(tmp_path, data_dir):
    from prunesweep.util.errors import PrunesweepError

    with pytest.raises(PrunesweepError, match="owl"):
        cell(tmp_path, data_dir, "x", "pruner=owl", "pruner.pattern=2:4")


def test_layer_drop_cell_stores_a_shallower_checkpoint_that_reloads(tmp_path, data_dir):
    from transformers import AutoModelForCausalLM

    rows = cell(tmp_path, data_dir, "drop", "pruner=layer_drop", "pruner.rate=0.5", "schedule=oneshot")
    assert final(rows)["prune_layers_left"] == 2  # tiny LLaMA: 4 -> 2 layers
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "drop" / "checkpoints" / "step_1")
    assert model.config.num_hidden_layers == 2 and len(model.model.layers) == 2
    assert final(rows)["total_params"] == sum(p.numel() for p in model.parameters())


def test_magnitude_nm_pattern_is_exact(tmp_path, data_dir):
    rows = cell(tmp_path, data_dir, "mag", "pruner=magnitude", "pruner.pattern=2:4", "schedule=oneshot")
    assert final(rows)["achieved_sparsity"] == pytest.approx(0.5, abs=1e-9)
    assert final(rows)["pattern"] == "2:4"
