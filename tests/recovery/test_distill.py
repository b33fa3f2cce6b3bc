"""Distillation from the dense model: the loss is the textbook KL + CE, a distilled masked model keeps its zeros
and moves towards its teacher, a depth-pruned student learns from its deeper teacher, and bad settings fail in one
line before any model loads."""

import copy
import json

import pytest
import torch
from omegaconf import OmegaConf

from prunesweep.config.schema import DistillConfig, RecoveryConfig
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.masks import module_sparsity
from prunesweep.recovery import recover
from prunesweep.recovery.data import IGNORE_INDEX
from prunesweep.recovery.distill import DistillLoss, distillation_kl, matched_layer
from prunesweep.run.cell import run
from prunesweep.util.errors import PrunesweepError
from tests.compose import compose_config, make_pruner, settings_error
from tests.models import tiny_model
from tests.recovery.test_recovery import corpus, zero_masks  # noqa: F401  (corpus: a module fixture)


def distill_cfg(**kw) -> DistillConfig:
    return OmegaConf.structured(DistillConfig(**kw))


def batch(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (2, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row
    labels = ids.clone()
    labels[:, :3] = IGNORE_INDEX  # an unlabelled prompt
    labels[mask == 0] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def teacher_and_student():
    teacher = tiny_model().model
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for param in student.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return teacher, student


def hand_kl(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """KL(p_t || p_s) at temperature T, by the definition, averaged over the labelled next-token positions."""
    total, count = 0.0, 0
    for row in range(labels.size(0)):
        for pos in range(labels.size(1) - 1):
            if labels[row, pos + 1] == IGNORE_INDEX:
                continue
            p_t = torch.softmax(teacher[row, pos].double() / temperature, -1)
            p_s = torch.softmax(student[row, pos].double() / temperature, -1)
            total += float((p_t * (p_t.log() - p_s.log())).sum())
            count += 1
    return total / count


@torch.no_grad()
def test_the_loss_is_alpha_t2_kl_plus_the_models_own_cross_entropy():
    teacher, student = teacher_and_student()
    data = batch(teacher.config.vocab_size)
    inputs = {k: data[k] for k in ("input_ids", "attention_mask")}
    kl = hand_kl(student(**inputs).logits, teacher(**inputs).logits, data["labels"], 2.0)
    ce = float(student(**data).loss)
    assert kl > 1e-4
    for alpha in (1.0, 0.3, 0.0):
        loss = DistillLoss(teacher, student, distill_cfg(alpha=alpha, temperature=2.0))(student, data)
        assert float(loss) == pytest.approx(alpha * 4.0 * kl + (1 - alpha) * ce, rel=1e-5)


def test_kl_of_identical_logits_is_zero_and_grows_with_disagreement():
    logits = torch.randn(5, 11)
    assert float(distillation_kl(logits, logits, 1.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(distillation_kl(logits * 2, logits, 1.0)) > float(distillation_kl(logits * 1.5, logits, 1.0)) > 0


def test_teacher_layers_match_the_student_layer_at_the_same_relative_depth():
    assert [matched_layer(t, 4, 4) for t in range(4)] == [0, 1, 2, 3]
    assert [matched_layer(t, 4, 2) for t in range(4)] == [0, 0, 1, 1]
    assert matched_layer(-1, 32, 24) == 23


def test_hidden_term_adds_the_relative_mse_of_the_matched_outputs():
    teacher, student = teacher_and_student()
    data = batch(teacher.config.vocab_size)
    logits_only = DistillLoss(teacher, student, distill_cfg(alpha=1.0))(student, data)
    with_hidden = DistillLoss(teacher, student, distill_cfg(alpha=1.0, layers=[1, -1], hidden_weight=2.0))
    added = float((with_hidden(student, data) - logits_only).detach())
    assert added > 0
    assert float(DistillLoss(teacher, teacher, distill_cfg(layers=[1, -1]))(teacher, data)) == pytest.approx(
        float(DistillLoss(teacher, teacher, distill_cfg())(teacher, data)), abs=1e-6
    )  # a student equal to its teacher: no hidden-state penalty


def recovery(**kw) -> RecoveryConfig:
    settings = {"kind": "distill", "params": "full", "distill": DistillConfig(alpha=1.0, temperature=1.0)}
    settings |= {"max_steps": 12, "batch_size": 2, "cutoff_len": 64, "lr": 2e-3, "warmup_steps": 0, **kw}
    return OmegaConf.structured(RecoveryConfig(**settings))


@pytest.mark.parametrize("params", ["full", "lora"])
def test_a_distilled_masked_student_keeps_its_zeros_and_moves_towards_its_teacher(params, corpus, data_dir):  # noqa: F811
    loaded = tiny_model()
    teacher = copy.deepcopy(loaded.model)
    pruner = make_pruner("magnitude", rate=0.5)
    pruner.prune_to(loaded.model, 0.5, PruneContext(loaded.tokenizer, calibration=lambda: None))
    zeros = zero_masks(loaded.model, pruner.cfg.targets)
    ids = loaded.tokenizer("the dog sat on the mat and the cat sat on the log. " * 2, return_tensors="pt").input_ids
    probe = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}  # text like the corpus
    gap = DistillLoss(teacher, loaded.model, distill_cfg(alpha=1.0, temperature=1.0))
    with torch.no_grad():
        before = float(gap(loaded.model, probe))
    cfg = recovery(params=params, dataset=corpus, lr=1e-2 if params == "lora" else 5e-4)
    model, result = recover(loaded.model, loaded.tokenizer, cfg, data_dir, pruner.after_update, teacher=teacher)
    with torch.no_grad():
        after = float(gap(model, probe))
    assert module_sparsity(model, pruner.cfg.targets) == 0.5
    assert all(torch.equal(zero_masks(model, pruner.cfg.targets)[name], mask) for name, mask in zeros.items())
    assert after < before, (before, after)
    assert result.train_losses[-1] < result.train_losses[0]
    assert not any(p.requires_grad for p in teacher.parameters())


def test_a_depth_pruned_student_distils_from_its_deeper_teacher(tmp_path, data_dir):
    overrides = ["experiment=smoke", "pruner=layer_drop", "pruner.rate=0.5", "schedule=oneshot", "recovery=distill"]
    overrides += ["recovery.max_steps=3", "recovery.batch_size=2", "recovery.val_max_examples=2", "benchmark.tasks=[]"]
    overrides += ["recovery.distill.layers=[1,-1]", "recovery.dataset=c4"]
    cfg = compose_config([*overrides, f"paths.data_dir={data_dir}", f"paths.store_dir={tmp_path}/store"])
    rows = run(cfg, tmp_path / "cell")
    recovered = [r for r in rows if r["stage"] == "recovered"]
    dense = next(r for r in rows if r["stage"] == "dense")
    assert recovered and recovered[0]["total_params"] < dense["total_params"]  # 2 of 4 layers gone
    for row in recovered:
        assert row["recovery_params"] == "lora" and row["distill_layers"] == "1,-1"
        assert row["distill_teacher_hash"] == dense["model_hash"]
        assert row["recovery_steps"] == 3 and row["recovery_val_loss_after"] is not None
    assert json.loads((tmp_path / "cell" / "status.json").read_text())["state"] == "done"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["recovery.distill.alpha=1.5"], "recovery.distill.alpha=1.5 must be in [0, 1]"),
        (["recovery.distill.temperature=0"], "recovery.distill.temperature=0.0 must be > 0"),
        (["recovery.distill.layers=[4]"], "lists layer 4, but teacher 'tiny_llama' has 4 decoder layers"),
        (["recovery.params=null"], "recovery=distill needs recovery.params"),
    ],
)
def test_bad_distillation_settings_fail_before_any_model_loads(overrides, message, data_dir):
    assert message in settings_error(data_dir, "recovery=distill", *overrides)


def test_settings_of_another_recovery_are_refused(data_dir):
    assert "applies to recovery=distill only" in settings_error(data_dir, "recovery=lora", "recovery.params=full")


def test_a_teacher_with_another_vocabulary_fails_before_any_model_loads(tmp_path, data_dir):
    other = tiny_model(vocab_size=300).model
    other.save_pretrained(tmp_path / "teacher")
    message = settings_error(data_dir, "recovery=distill", f"recovery.distill.teacher={tmp_path}/teacher")
    assert "has a vocabulary of 300" in message and "must share the student's tokenizer" in message


def test_the_teacher_must_exist(tmp_path, data_dir):
    message = settings_error(data_dir, "recovery=distill", f"recovery.distill.teacher={tmp_path}/nowhere")
    assert "does not exist" in message


def test_distill_loss_refuses_a_teacher_of_another_vocabulary():
    teacher, student = tiny_model(vocab_size=300).model, tiny_model().model
    with pytest.raises(PrunesweepError, match="vocabulary"):
        DistillLoss(teacher, student, distill_cfg())
