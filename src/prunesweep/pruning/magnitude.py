"""Unstructured magnitude pruning (Gholami & Omar 2023).

Pruned weights are zeroed in the tensors themselves, so checkpoints are plain HF weights and LoRA merges land
in real tensors; the shared `MaskKeeper` re-applies the zeros after training/merging."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from prunesweep.config.schema import PrunerConfig, choices
from prunesweep.models.architecture import out_in_weight
from prunesweep.pruning.base import PruneContext, Pruner, PruneResult, PrunerKind
from prunesweep.pruning.masks import MaskKeeper, prunable_linears, sparsity_of, zero_smallest_
from prunesweep.pruning.nm import magnitude_nm_, parse_pattern
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel

# global: one threshold over all target linears; layer: the same fraction in every linear
Scope = choices("Scope", "global", "layer")


@dataclass
class MagnitudeConfig(PrunerConfig):
    name: str = "magnitude"
    scope: Scope = Scope["global"]  # type: ignore[valid-type]
    pattern: str = "unstructured"  # unstructured | N:M (e.g. 2:4): the smallest m - n |w| of every group of m


class MagnitudePruner(Pruner):
    """Zero the smallest |w| of the target linear layers, globally or per layer."""

    Config = MagnitudeConfig

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.nm = parse_pattern(cfg.pattern)
        self.keeper = MaskKeeper(list(cfg.targets))

    @property
    def kind(self) -> PrunerKind:  # type: ignore[override]
        return PrunerKind.unstructured if self.nm is None else PrunerKind.semi_structured

    def label(self) -> str:
        return self.cfg.name + ("" if self.nm is None else f".{self.cfg.pattern}")

    def record_fields(self) -> dict[str, Any]:
        return {"scope": str(self.cfg.scope.value), "pattern": self.cfg.pattern}

    def check_rates(self, rates: list[float]) -> None:
        if self.nm is not None:
            self.nm.check_rates(rates)

    def check(self, model: PreTrainedModel) -> None:
        if not prunable_linears(model, self.cfg.targets):
            raise PrunesweepError(f"magnitude pruner: no layers named {self.cfg.targets} in {type(model).__name__}")
        if self.nm is not None:
            for name, module in prunable_linears(model, self.cfg.targets).items():
                self.nm.check_divides(out_in_weight(module).shape[1], name)

    def prune_to(self, model: PreTrainedModel, target: float, ctx: PruneContext) -> PruneResult:
        start = time.perf_counter()
        modules = prunable_linears(model, self.cfg.targets)
        weights = [out_in_weight(module) for module in modules.values()]
        total = sum(weight.numel() for weight in weights)
        with torch.no_grad():
            if self.nm is not None:  # the pattern implies the rate
                for name, module in modules.items():
                    self.nm.check_divides(out_in_weight(module).shape[1], name)
                for weight in weights:
                    magnitude_nm_(weight, self.nm.n, self.nm.m)
            elif self.cfg.scope == "global":
                # Already-zero weights have the smallest magnitude, so the cumulative target is exact.
                zero_smallest_(weights, round(target * total))
            else:
                for weight in weights:
                    zero_smallest_([weight], round(target * weight.numel()))
        self.keeper.capture(model)
        achieved = sparsity_of(modules.values())
        return PruneResult(target, achieved, time.perf_counter() - start, {"prunable_params": total})

    def after_update(self, model: PreTrainedModel) -> None:
        self.keeper.reapply(model)
