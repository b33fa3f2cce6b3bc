"""Layer-wise pruning methods (Wanda, SparseGPT): prune every decoder layer's linears from calibration
statistics, in `sequential` mode (each layer calibrated on the outputs of its pruned predecessors, as the
papers) or `dense` mode (statistics of the dense model, computed once by `dense_statistics(model, ids,
method.kinds)` and reusable across rates and patterns)."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from prunesweep.errors import PrunesweepError
from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning.calibration import (
    check_calibration_ids,
    dense_statistics,
    layer_statistics,
    sequential_calibration,
)
from prunesweep.pruning.masks import sparsity_of
from prunesweep.pruning.nm import NMPattern, parse_pattern

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
            for index, layer in enumerate(layers):
                prune_layer(index, layer, per_layer[index])
        linears = [list(arch.linears(layer).values()) for layer in layers]
        return LayerwiseResult(
            achieved=sparsity_of(m for layer in linears for m in layer),
            seconds=time.perf_counter() - start,
            layer_sparsity=[sparsity_of(layer) for layer in linears],
            prunable_params=sum(m.weight.numel() for layer in linears for m in layer),
        )
