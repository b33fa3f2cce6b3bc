"""Recovery fine-tuning: sparsity survives LoRA training + merge and full fine-tuning, divergence is caught,
the recovered model round-trips through a checkpoint, and training actually lowers the held-out loss."""

import json
import warnings
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from prunesweep.config.paths import config_dir
from prunesweep.config.schema import RecoveryConfig
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.masks import module_sparsity, prunable_linears
from prunesweep.recovery import RecoveryDiverged, check_recovery, recover
from prunesweep.recovery.data import IGNORE_INDEX, build_datasets
from prunesweep.store.checkpoint import load_checkpoint, save_checkpoint
from prunesweep.util.errors import PrunesweepError
from tests.compose import make_pruner, settings_error
from tests.models import tiny_model


def pruned(arch: str = "llama", rate: float = 0.5):
    loaded = tiny_model(arch)
    pruner = make_pruner("magnitude", rate=rate)
    pruner.prune_to(loaded.model, rate, PruneContext(loaded.tokenizer, calibration=lambda: None))
    return loaded, pruner


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """A small repetitive plain-text corpus: cheap steps, and learnable within a few of them."""
    path = tmp_path_factory.mktemp("data") / "tiny.jsonl"
    line = "the cat sat on the mat and the dog sat on the log. "
    path.write_text("".join(json.dumps({"text": line * 3}) + "\n" for _ in range(40)))
    return str(path)


def recovery(**kw) -> RecoveryConfig:
    defaults = {"kind": "lora", "max_steps": 4, "batch_size": 2, "cutoff_len": 64, "lr": 1e-3, "warmup_steps": 0}
    return OmegaConf.structured(RecoveryConfig(**{**defaults, **kw}))


def zero_masks(model: nn.Module, targets: list[str]) -> dict[str, torch.Tensor]:
    return {name: (m.weight == 0).clone() for name, m in prunable_linears(model, targets).items()}


def test_a_lora_recovery_raises_no_future_warning(data_dir):
    loaded, pruner = pruned("llama")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recover(
            loaded.model,
            loaded.tokenizer,
            recovery(max_steps=1, dataset="c4"),
            data_dir,
            after_update=pruner.after_update,
        )
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_merge_keeps_the_exact_mask_and_changes_weights(arch, data_dir):
    loaded, pruner = pruned(arch)
    zeros = zero_masks(loaded.model, pruner.cfg.targets)
    before = {name: m.weight.detach().clone() for name, m in prunable_linears(loaded.model, pruner.cfg.targets).items()}
    # byte-level tokenizer: Alpaca prompts are ~150-300 tokens, so the cutoff leaves room for the responses
    cfg = recovery(dataset="alpaca", cutoff_len=384, val_max_examples=4)
    model, result = recover(loaded.model, loaded.tokenizer, cfg, data_dir, after_update=pruner.after_update)
    assert model is loaded.model and not model.training
    assert not any("lora" in type(m).__name__.lower() for m in model.modules())  # no peft wrappers left
    assert module_sparsity(model, pruner.cfg.targets) == 0.5
    after = prunable_linears(model, pruner.cfg.targets)
    for name, mask in zeros.items():
        assert torch.equal(after[name].weight == 0, mask), name
        assert not torch.equal(after[name].weight, before[name]), f"{name} was not trained"
    assert result.steps == len(result.train_losses) == 4 and result.tokens_per_second > 0


def test_full_finetuning_keeps_zeros_after_every_step(corpus, data_dir):
    loaded, pruner = pruned()
    zeros = zero_masks(loaded.model, pruner.cfg.targets)
    seen = []

    def on_step(step: int, loss: float) -> None:
        seen.append(module_sparsity(loaded.model, pruner.cfg.targets))

    model, _ = recover(
        loaded.model, loaded.tokenizer, recovery(kind="full", dataset=corpus), data_dir, pruner.after_update, on_step
    )
    assert seen == [0.5] * 4
    after = zero_masks(model, pruner.cfg.targets)
    assert all(torch.equal(after[name], mask) for name, mask in zeros.items())


def test_iterative_prune_recover_cycles_hit_each_target_exactly(corpus, data_dir):
    loaded, pruner = pruned(rate=0.1)
    ctx = PruneContext(loaded.tokenizer, calibration=lambda: None)
    model = loaded.model
    for target in (0.1, 0.3, 0.5):
        achieved = pruner.prune_to(model, target, ctx).achieved
        model, _ = recover(
            model, loaded.tokenizer, recovery(dataset=corpus, max_steps=2), data_dir, pruner.after_update
        )
        assert module_sparsity(model, pruner.cfg.targets) == achieved == pytest.approx(target, abs=1e-4)


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_nan_loss_raises_with_step_and_lora_leaves_base_untouched(kind, corpus, data_dir, tmp_path):
    loaded, pruner = pruned()
    state = {k: v.clone() for k, v in loaded.model.state_dict().items()}

    def poison(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        return output * float("nan") if module.training else None  # validation passes stay clean

    loaded.model.model.norm.register_forward_hook(poison)
    checkpoint = tmp_path / "cycle1"
    with pytest.raises(RecoveryDiverged, match=r"step 1/4: training loss nan"):
        model, _ = recover(
            loaded.model, loaded.tokenizer, recovery(kind=kind, dataset=corpus), data_dir, pruner.after_update
        )
        save_checkpoint(model, loaded.tokenizer, checkpoint)
    assert not checkpoint.exists()
    if kind == "lora":
        assert set(loaded.model.state_dict()) == set(state)  # adapters removed, nothing merged
        assert all(torch.equal(v, state[k]) for k, v in loaded.model.state_dict().items())


def test_recovered_checkpoint_reloads_with_identical_logits_and_sparsity(corpus, data_dir, tmp_path):
    loaded, pruner = pruned()
    model, _ = recover(loaded.model, loaded.tokenizer, recovery(dataset=corpus), data_dir, pruner.after_update)
    folder = save_checkpoint(model, loaded.tokenizer, tmp_path / "cycle1")
    again, _ = load_checkpoint(folder)
    ids = loaded.tokenizer("Below is an instruction", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)
    assert module_sparsity(again, pruner.cfg.targets) == 0.5


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_training_lowers_held_out_loss_on_a_repetitive_corpus(kind, corpus, data_dir):
    cfg = recovery(kind=kind, dataset=corpus, max_steps=15, lr=3e-3, val_fraction=0.2)
    loaded = tiny_model()
    _, result = recover(loaded.model, loaded.tokenizer, cfg, data_dir)
    assert result.val_loss_after < result.val_loss_before - 0.2
    assert result.train_losses[-1] < result.train_losses[0]


def test_same_seed_same_losses_and_global_rng_untouched(corpus, data_dir):
    runs = []
    for _ in range(2):
        loaded, pruner = pruned()
        torch.manual_seed(123)
        _, result = recover(loaded.model, loaded.tokenizer, recovery(dataset=corpus), data_dir, pruner.after_update)
        runs.append((result.train_losses, torch.rand(1).item()))
    assert runs[0] == runs[1]
    torch.manual_seed(123)
    assert runs[0][1] == torch.rand(1).item()


def test_physically_shrunk_layers_are_recovered_with_shapes_kept(corpus, data_dir):
    """A structural pruner leaves non-uniform layers; LoRA must train and merge them as they are."""
    loaded = tiny_model()
    mlp = loaded.model.model.layers[0].mlp
    keep = torch.arange(0, 128, 2)
    with torch.no_grad():
        for name in ("gate_proj", "up_proj"):
            old = getattr(mlp, name)
            new = nn.Linear(old.in_features, keep.numel(), bias=False)
            new.weight.copy_(old.weight[keep])
            setattr(mlp, name, new)
        down = nn.Linear(keep.numel(), mlp.down_proj.out_features, bias=False)
        down.weight.copy_(mlp.down_proj.weight[:, keep])
        mlp.down_proj = down
    shapes = {k: v.shape for k, v in loaded.model.state_dict().items()}
    model, result = recover(loaded.model, loaded.tokenizer, recovery(dataset=corpus), data_dir)
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert result.val_loss_after is not None


def test_alpaca_examples_train_on_the_response_only(data_dir):
    loaded = tiny_model()
    data = build_datasets(recovery(cutoff_len=1024, val_fraction=0.0), loaded.tokenizer, data_dir)
    assert len(data.train) == 1000 and data.val == [] and data.source.startswith("alpaca@")
    example = data.train[0]
    first = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    prompt = loaded.tokenizer.decode(example.input_ids[:first])
    response = loaded.tokenizer.decode(example.input_ids[first:])
    assert prompt.endswith("### Response:\n") and response.endswith(loaded.tokenizer.eos_token)
    assert example.labels[first:] == example.input_ids[first:]
    everything = build_datasets(recovery(cutoff_len=1024, train_on_inputs=True), loaded.tokenizer, data_dir)
    assert all(e.labels == e.input_ids for e in everything.train)
    assert len(everything.val) == 50  # 5% of 1000, at most val_max_examples


def test_kind_none_is_a_no_op(data_dir):
    loaded = tiny_model()
    model, result = recover(loaded.model, loaded.tokenizer, recovery(kind="none", dataset="missing"), data_dir)
    assert model is loaded.model and result.steps == 0 and result.train_losses == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("recovery.kind=qlora", "Invalid value 'qlora', expected one of [none, lora, full, distill]"),
        ("recovery.dtype=float16", "Invalid value 'float16', expected one of [float32, bfloat16]"),
        ("recovery.scheduler=step", "Invalid value 'step', expected one of [linear, cosine, constant]"),
        ("recovery.max_steps=0", "recovery.max_steps=0 must be >= 1"),
        ("recovery.lr=-1.0", "recovery.lr=-1.0 must be > 0"),
        ("recovery.val_fraction=1.0", "recovery.val_fraction=1.0 must be in [0, 1)"),
        ("recovery.lora_r=0", "recovery.lora_r=0 must be >= 1"),
        ("recovery.lora_targets=[]", "recovery.lora_targets must name at least one module"),
        ("recovery.dataset=c5", "recovery.dataset='c5'"),
        ("recovery.dataset=/nonexistent/data.json", "not found"),
    ],
)
def test_bad_settings_fail_with_one_line(override, message, data_dir):
    error = settings_error(data_dir, "recovery=lora", override)
    assert message in error and "\n" not in error


def test_missing_data_dir_fails_before_any_work():
    with pytest.raises(PrunesweepError, match="not found"):
        check_recovery(recovery(dataset="wikitext2"), "/nonexistent/data")


@pytest.mark.parametrize("name", ["none", "lora", "full"])
def test_shipped_configs_validate(name, data_dir):
    raw = OmegaConf.load(Path(config_dir()) / "recovery" / f"{name}.yaml")
    raw.pop("defaults")
    cfg = OmegaConf.merge(OmegaConf.structured(RecoveryConfig), raw)
    check_recovery(cfg, data_dir)
    assert cfg.kind == name
