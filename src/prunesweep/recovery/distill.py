"""Distillation loss of a pruned student against its frozen teacher (recovery=distill).

loss = alpha * T^2 * KL(teacher || student) at temperature T + (1 - alpha) * CE + hidden_weight * relative MSE
of chosen decoder layers' outputs. KL and CE are token means over the positions the CE trains on (labels not
IGNORE_INDEX, shifted as causal LMs predict the next token); the hidden term is taken on every non-padding
position, as ||h_s - h_t||^2 / ||h_t||^2 so that layers with large activations do not dominate."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from prunesweep.config.schema import DistillConfig
from prunesweep.models.architecture import require_architecture
from prunesweep.recovery.data import IGNORE_INDEX
from prunesweep.util.errors import PrunesweepError


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over rows of KL(softmax(t / T) || softmax(s / T)) for [tokens, vocab] logits (float32 math)."""
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


def matched_layer(teacher_layer: int, teacher_layers: int, student_layers: int) -> int:
    """The student layer at the relative depth of `teacher_layer` (itself when no layer was dropped)."""
    index = teacher_layer % teacher_layers
    return min(student_layers - 1, max(0, math.ceil((index + 1) * student_layers / teacher_layers) - 1))


def check_layers(layers: list[int], n_layers: int, where: str) -> None:
    """Every listed teacher layer exists (negative indices count from the end)."""
    for layer in layers:
        if not -n_layers <= layer < n_layers:
            raise PrunesweepError(
                f"recovery.distill.layers lists layer {layer}, but {where} has {n_layers} decoder layers "
                f"(valid: {-n_layers}..{n_layers - 1})"
            )


@dataclass
class _LayerOutputs:
    """Outputs of chosen decoder layers, captured by forward hooks during one forward pass."""

    outputs: dict[int, torch.Tensor] = field(default_factory=dict)

    @contextmanager
    def capture(self, model: nn.Module, layers: list[int]) -> Iterator[None]:
        modules = require_architecture(model).layers(model)

        def keep(index: int):
            def hook(_module, _args, output) -> None:
                self.outputs[index] = output[0] if isinstance(output, tuple) else output

            return hook

        handles = [modules[i].register_forward_hook(keep(i)) for i in layers]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


class DistillLoss:
    """Callable (trained model, batch) -> loss; the teacher runs without grad on the same batch."""

    def __init__(self, teacher: nn.Module, student: nn.Module, cfg: DistillConfig) -> None:
        teacher_layers = len(require_architecture(teacher).layers(teacher))
        student_layers = len(require_architecture(student).layers(student))
        check_layers(list(cfg.layers), teacher_layers, "the teacher")
        if teacher.config.vocab_size != student.config.vocab_size:
            raise PrunesweepError(
                f"teacher vocabulary ({teacher.config.vocab_size}) differs from the student's ({student.config.vocab_size})"
            )
        self.pairs = [(t % teacher_layers, matched_layer(t, teacher_layers, student_layers)) for t in cfg.layers]
        if self.pairs and teacher.config.hidden_size != student.config.hidden_size:
            raise PrunesweepError(
                f"recovery.distill.layers needs equal hidden sizes; the student's is {student.config.hidden_size}, the "
                f"teacher's {teacher.config.hidden_size} (channel-pruned): distil on the logits only (layers: [])"
            )
        self.teacher, self.student = teacher.eval().requires_grad_(False), student
        self.alpha, self.temperature, self.hidden_weight = cfg.alpha, cfg.temperature, cfg.hidden_weight

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        taught, learnt = _LayerOutputs(), _LayerOutputs()
        with torch.no_grad(), taught.capture(self.teacher, [t for t, _ in self.pairs]):
            teacher_logits = self.teacher(**inputs).logits
        with learnt.capture(self.student, [s for _, s in self.pairs]):
            student_logits = model(**inputs).logits
        labels = batch["labels"][:, 1:]
        trained = labels != IGNORE_INDEX
        student_rows, teacher_rows = student_logits[:, :-1][trained], teacher_logits[:, :-1][trained]
        loss = self.alpha * self.temperature**2 * distillation_kl(student_rows, teacher_rows, self.temperature)
        if self.alpha < 1:
            loss = loss + (1 - self.alpha) * F.cross_entropy(student_rows.float(), labels[trained])
        if self.pairs and self.hidden_weight > 0:
            real = batch["attention_mask"].bool()
            hidden = [
                _relative_mse(learnt.outputs[s][real].float(), taught.outputs[t][real].float()) for t, s in self.pairs
            ]
            loss = loss + self.hidden_weight * torch.stack(hidden).mean()
        return loss


def _relative_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return (student - teacher).pow(2).sum() / teacher.pow(2).sum().clamp_min(1e-12)
