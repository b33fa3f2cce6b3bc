"""Sparsity accounting and mask keeping shared by every unstructured / semi-structured method.

A pruned weight is an exact zero in the tensor itself (masks are made permanent), so checkpoints are plain HF
weights; `MaskKeeper` re-zeroes the pruned positions after training steps or a LoRA merge."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def prunable_linears(model: nn.Module, targets: list[str]) -> dict[str, nn.Module]:
    """Linear/Conv1D modules whose attribute name is in `targets` (embeddings and lm_head never match)."""
    found = {}
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in targets and isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2:
            found[name] = module
    return found


def sparsity_of(modules: Iterable[nn.Module]) -> float:
    """Fraction of exactly-zero weights over `modules`."""
    modules = list(modules)
    zeros = sum(int((m.weight == 0).sum().item()) for m in modules)
    return zeros / max(1, sum(m.weight.numel() for m in modules))


def module_sparsity(model: nn.Module, targets: list[str]) -> float:
    """Achieved sparsity of the prunable layers of `model`."""
    return sparsity_of(prunable_linears(model, targets).values())


class MaskKeeper:
    """Remembers which weights of the target linears are pruned (zero) and keeps them at zero."""

    def __init__(self, targets: list[str]) -> None:
        self.targets = targets
        self.masks: dict[str, torch.Tensor] = {}

    def capture(self, model: nn.Module) -> None:
        """Take the current zeros of the target linears as the mask (after a pruning step, or on resume)."""
        self.masks = {name: module.weight != 0 for name, module in prunable_linears(model, self.targets).items()}

    def reapply(self, model: nn.Module) -> None:
        """Zero the pruned positions again (after full fine-tuning steps or a LoRA merge)."""
        modules = prunable_linears(model, self.targets)
        if not self.masks:  # e.g. resumed from a checkpoint: the zeros are the mask
            self.capture(model)
        with torch.no_grad():
            for name, mask in self.masks.items():
                modules[name].weight.mul_(mask.to(modules[name].weight.dtype))
