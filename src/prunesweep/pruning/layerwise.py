"""Layer-wise pruning methods (Wanda, SparseGPT): prune every decoder layer's linears from calibration
statistics, in `sequential` mode (each layer calibrated on the outputs of its pruned predecessors, as the
papers) or `dense` mode (statistics of the dense model, computed once by `dense_statistics(model, ids,
method.kinds)` and reusable across rates and patterns)."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from prunesweep.config.schema import PrunerConfig, choices
from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.models.offload import offloader_of
from prunesweep.pruning.base import PruneContext, Pruner, PruneResult, PrunerKind
from prunesweep.pruning.calibration import (
    check_calibration_ids,
    dense_statistics,
    layer_statistics,
    sequential_calibration,
)
from prunesweep.pruning.masks import MaskKeeper, sparsity_of
from prunesweep.pruning.nm import NMPattern, parse_pattern
from prunesweep.pruning.owl import (
    DEFAULT_LAMBDA,
    DEFAULT_M,
    activation_norms,
    check_owl,
    outlier_ratios,
    owl_layer_rates,
)
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel

MODES = ("sequential", "dense")


@dataclass
class LayerwiseResult:
    """What a `PruneResult` needs: zero fraction over the pruned linears, wall time, per-layer zero fractions."""

    achieved: float
    seconds: float
    layer_sparsity: list[float]
    prunable_params: int


def layer_rates_for(
    rate: float | None, nm: NMPattern | None, layer_rates: list[float] | None, n_layers: int
) -> list[float]:
    """One sparsity per decoder layer: the uniform `rate`, OWL-style `layer_rates`, or the N:M implied rate."""
    if nm is not None:
        if layer_rates is not None:
            raise PrunesweepError(f"layer_rates apply to unstructured sparsity, not to pattern {nm.n}:{nm.m}")
        if rate is not None and not math.isclose(rate, nm.rate, abs_tol=1e-9):
            raise PrunesweepError(f"pattern {nm.n}:{nm.m} implies sparsity {nm.rate:g}, not the requested {rate:g}")
        return [nm.rate] * n_layers
    if layer_rates is None:
        if rate is None:
            raise PrunesweepError("unstructured pruning needs a rate")
        layer_rates = [rate] * n_layers
    if len(layer_rates) != n_layers:
        raise PrunesweepError(f"{len(layer_rates)} layer_rates for a model with {n_layers} decoder layers")
    if not all(0.0 <= r < 1.0 for r in layer_rates):
        raise PrunesweepError(f"sparsity rates must be in [0, 1), got {layer_rates}")
    return list(layer_rates)


class LayerwiseMethod(ABC):
    """A method that prunes each linear from its input statistics; calling it prunes a whole model."""

    kinds: tuple[str, ...]  # the calibration statistics it needs (see `calibration.STATISTICS`)

    def check(self, nm: NMPattern | None) -> None:  # noqa: B027 - optional hook
        """Raise PrunesweepError if the method's own settings do not fit the pattern."""

    @abstractmethod
    def prune_linear(
        self, module: nn.Module, stats: dict[str, torch.Tensor], rate: float, nm: NMPattern | None
    ) -> None:
        """Zero (and possibly update) the weights of one linear in place: `rate` unstructured, or `nm`."""

    def __call__(
        self,
        model: PreTrainedModel,
        calibration_ids: torch.Tensor | None,
        rate: float | None,
        pattern: str = "unstructured",
        mode: str = "sequential",
        layer_rates: list[float] | None = None,
        stats: dict[str, torch.Tensor] | None = None,
        batch_size: int = 8,
    ) -> LayerwiseResult:
        """Validate everything, then prune every decoder layer's linears in place.

        `rate` is the uniform sparsity (None or the implied rate for N:M `pattern`s); `layer_rates` one per
        decoder layer instead (OWL); `stats` (dense mode only) an earlier `dense_statistics(model, ids,
        self.kinds)`, else they are computed from `calibration_ids` (n_samples, seq_len)."""
        start = time.perf_counter()
        arch = require_architecture(model)
        layers = arch.layers(model)
        nm = parse_pattern(pattern)
        rates = layer_rates_for(rate, nm, layer_rates, len(layers))
        self.check(nm)
        if mode not in MODES:
            raise PrunesweepError(f"calibration mode {mode!r} is not one of {MODES}")
        if nm is not None:
            for index, layer in enumerate(layers):
                for name, module in arch.linears(layer).items():
                    nm.check_divides(out_in_weight(module).shape[1], f"layer {index} {name}")
        if stats is not None and mode != "dense":
            raise PrunesweepError("precomputed statistics are dense-model statistics: use them with mode='dense'")
        if stats is None:
            check_calibration_ids(calibration_ids)

        def prune_layer(index: int, layer: nn.Module, layer_stats: dict[str, dict[str, torch.Tensor]]) -> None:
            for name, module in arch.linears(layer).items():
                self.prune_linear(module, layer_stats[name], rates[index], nm)

        if mode == "sequential":
            sequential_calibration(model, calibration_ids, self.kinds, prune_layer, batch_size)
        else:
            if stats is None:
                stats = dense_statistics(model, calibration_ids, self.kinds, batch_size)
            per_layer = [layer_statistics(stats, i, arch.linears(layer), self.kinds) for i, layer in enumerate(layers)]
            offloader = offloader_of(model)
            for index, layer in enumerate(layers):
                with offloader.onloaded(layer, index, changed=True):
                    prune_layer(index, layer, per_layer[index])
        linears = [list(arch.linears(layer).values()) for layer in layers]
        return LayerwiseResult(
            achieved=sparsity_of(m for layer in linears for m in layer),
            seconds=time.perf_counter() - start,
            layer_sparsity=[sparsity_of(layer) for layer in linears],
            prunable_params=sum(m.weight.numel() for layer in linears for m in layer),
        )


LayerRatios = choices("LayerRatios", "uniform", "owl")


@dataclass
class LayerwiseConfig(PrunerConfig):
    """Options of the layer-wise methods: sparsity pattern and per-layer ratios (uniform or OWL)."""

    pattern: str = "unstructured"  # unstructured | N:M (e.g. 2:4, 4:8): the rate is then implied, 1 - N/M
    layer_ratios: LayerRatios = LayerRatios["uniform"]  # type: ignore[valid-type]
    owl_m: float = DEFAULT_M  # OWL: a score is an outlier above owl_m x the layer's mean score
    owl_lambda: float = DEFAULT_LAMBDA  # OWL: spread of the layer rates around the target


class LayerwisePruner(Pruner):
    """Plugin side of a `LayerwiseMethod`: calibration text, dense statistics shared through the store memo,
    OWL layer rates, N:M patterns, and the pruned zeros kept through recovery."""

    method: ClassVar[LayerwiseMethod]

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.nm = parse_pattern(cfg.pattern)
        if self.nm is not None and cfg.layer_ratios == "owl":
            raise PrunesweepError(f"pruner.layer_ratios=owl applies to unstructured sparsity, not {cfg.pattern}")
        if cfg.layer_ratios == "owl":
            check_owl(0.5, cfg.owl_m, cfg.owl_lambda)
        self.method.check(self.nm)
        self.keeper = MaskKeeper(list(cfg.targets))

    @property
    def kind(self) -> PrunerKind:  # type: ignore[override]
        return PrunerKind.unstructured if self.nm is None else PrunerKind.semi_structured

    @property
    def uses_calibration(self) -> bool:
        return True

    def label(self) -> str:
        owl = "owl+" if self.cfg.layer_ratios == "owl" else ""
        return f"{owl}{self.cfg.name}" + ("" if self.nm is None else f".{self.cfg.pattern}")

    def record_fields(self) -> dict[str, Any]:
        return {
            "pattern": self.cfg.pattern,
            "layer_ratios": self.cfg.layer_ratios.value,
            "calibration_mode": self.cfg.calibration.mode.value,
        }

    def check_rates(self, rates: list[float]) -> None:
        if self.nm is not None:
            self.nm.check_rates(rates)

    def check(self, model: PreTrainedModel) -> None:
        arch = require_architecture(model)
        if self.nm is not None:
            for index, layer in enumerate(arch.layers(model)):
                for name, module in arch.linears(layer).items():
                    self.nm.check_divides(out_in_weight(module).shape[1], f"layer {index} {name}")

    def prune_to(self, model: PreTrainedModel, target: float, ctx: PruneContext) -> PruneResult:
        start = time.perf_counter()
        mode = self.cfg.calibration.mode.value
        layer_rates = None
        if self.cfg.layer_ratios == "owl":
            ratios = ctx.memo(
                "owl_outlier_ratios",
                lambda: {"ratios": outlier_ratios(model, activation_norms(model, ctx.calibration()), self.cfg.owl_m)},
            )["ratios"]
            layer_rates = owl_layer_rates(ratios, target, self.cfg.owl_lambda)
        stats = None
        if mode == "dense":  # the dense-mode statistics of this starting model, shared by every rate
            stats = ctx.memo(f"{'+'.join(self.method.kinds)}_statistics", lambda: dense_statistics(
                model, ctx.calibration(), self.method.kinds
            ))  # fmt: skip
        rate = None if self.nm is not None or layer_rates is not None else target
        calibration = None if stats is not None else ctx.calibration()
        result = self.method(model, calibration, rate, self.cfg.pattern, mode, layer_rates, stats)
        self.keeper.capture(model)
        details: dict[str, float | int | str] = {"prunable_params": result.prunable_params}
        details |= {f"layer_{i}_sparsity": s for i, s in enumerate(result.layer_sparsity)}
        return PruneResult(target, result.achieved, time.perf_counter() - start, details)

    def after_update(self, model: PreTrainedModel) -> None:
        self.keeper.reapply(model)
