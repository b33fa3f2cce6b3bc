"""The interface every pruning method implements, and the sparsity accounting they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.config import PrunerConfig

Tensors = dict[str, torch.Tensor]


@dataclass
class PruneContext:
    """What a pruner may use besides the model: tokenizer and a lazily built calibration batch."""

    tokenizer: PreTrainedTokenizerBase
    calibration: Callable[[], torch.Tensor]  # -> LongTensor (n_samples, seq_len), built on first call
    seed: int = 0
    # memo(name, compute) -> tensors computed once per (starting model, pruner settings, name), e.g. importance
    # scores shared by one-shot cells of different rates; the default computes every time.
    memo: Callable[[str, Callable[[], Tensors]], Tensors] = lambda _name, compute: compute()


@dataclass
class PruneResult:
    """Outcome of one pruning step (rates are fractions of the pruner's *prunable* parameters)."""

    requested: float
    achieved: float
    seconds: float
    details: dict[str, float | int | str] = field(default_factory=dict)


class Pruner(ABC):
    """A pruning method. `prune_to` is called once per schedule step with a rising cumulative target."""

    structural: bool = False

    def __init__(self, cfg: PrunerConfig) -> None:
        self.cfg = cfg

    def check(self, model: PreTrainedModel) -> None:  # noqa: B027 - optional hook
        """Raise PrunesweepError if this method cannot prune `model` (called before heavy work)."""

    @abstractmethod
    def prune_to(self, model: PreTrainedModel, target: float, ctx: PruneContext) -> PruneResult:
        """Prune in place until `target` of the prunable parameters are gone (cumulative, not incremental)."""

    def after_update(self, model: PreTrainedModel) -> None:  # noqa: B027 - optional hook
        """Re-establish invariants after weights were trained/merged (e.g. re-apply sparsity masks)."""


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) parameters, counting tied weights once."""
    total = nonzero = 0
    seen: set[int] = set()
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        nonzero += int(torch.count_nonzero(param).item())
    return total, nonzero
