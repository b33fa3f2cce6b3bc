"""The interface every pruning method implements, its base config schema, and what a step returns.

A method is one module (a `Pruner` subclass with its own `Config` dataclass) plus one `conf/pruner/<name>.yaml`
whose `_target_` names the class: nothing else knows the method exists (see README "Adding a method")."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from prunesweep.config.schema import PrunerConfig

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

Tensors = dict[str, torch.Tensor]


class PrunerKind(str, Enum):
    """What a method removes: zeros anywhere, zeros in N:M blocks, whole channels/heads, whole layers."""

    unstructured = "unstructured"
    semi_structured = "semi_structured"
    structural = "structural"
    depth = "depth"

    @property
    def zeroes_weights(self) -> bool:
        """True if pruned weights stay in the tensors as zeros (so recovery must keep them zero)."""
        return self in (PrunerKind.unstructured, PrunerKind.semi_structured)


@dataclass
class PruneContext:
    """What a pruner may use besides the model: tokenizer and a lazily built calibration batch."""

    tokenizer: PreTrainedTokenizerBase
    calibration: Callable[[], torch.Tensor]  # -> LongTensor (n_samples, seq_len), built on first call
    seed: int = 0
    # memo(name, compute) -> tensors computed once per (starting model, pruner settings except the rate,
    # calibration data, name), e.g. importance scores or activation statistics shared by one-shot cells of
    # several rates; the default computes every time.
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

    Config: ClassVar[type[PrunerConfig]] = PrunerConfig
    kind: ClassVar[PrunerKind]

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @property
    def uses_calibration(self) -> bool:
        """True if the method reads calibration text (its content is then part of every store key)."""
        return False

    def label(self) -> str:
        """Short method label for run names and tables, e.g. `wanda` or `llm_pruner.element1`."""
        return self.cfg.name

    def record_fields(self) -> dict[str, Any]:
        """Method-specific columns written into every record of a cell (e.g. importance, pattern)."""
        return {}

    def check_rates(self, rates: list[float]) -> None:  # noqa: B027 - optional hook
        """Raise PrunesweepError if this method cannot visit the schedule's cumulative `rates` (before any load)."""

    def check_architecture(self, config: PretrainedConfig, rates: list[float]) -> None:  # noqa: B027 - optional hook
        """Raise PrunesweepError if the schedule's `rates` cannot be visited on a model of this architecture config
        (read before the weights load)."""

    def check(self, model: PreTrainedModel) -> None:  # noqa: B027 - optional hook
        """Raise PrunesweepError if this method cannot prune `model` (called before heavy work)."""

    @abstractmethod
    def prune_to(self, model: PreTrainedModel, target: float, ctx: PruneContext) -> PruneResult:
        """Prune in place until `target` of the prunable parameters are gone (cumulative, not incremental)."""

    def after_update(self, model: PreTrainedModel) -> None:  # noqa: B027 - optional hook
        """Re-establish invariants after weights were trained/merged (e.g. re-apply sparsity masks)."""
