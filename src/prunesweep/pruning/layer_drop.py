"""Depth pruning as ShortGPT (Men et al. 2024): drop the decoder layers that change their input the least.

Block influence BI_l = 1 − mean over calibration tokens of cos(h_l, h_{l+1}), with h_l the input and h_{l+1}
the output of layer l. Taken with forward hooks on the layers, not `output_hidden_states`: HF's last hidden
state has the final norm applied (LLaMA, GPT-2), which is not the last layer's output. The model runs one layer
at a time (`forward_with_hooks`), so under `model.offload` one layer's weights are on the compute device."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from prunesweep.config.schema import PrunerConfig
from prunesweep.models.architecture import require_architecture
from prunesweep.models.params import count_params, dense_params
from prunesweep.pruning.base import PruneContext, Pruner, PruneResult, PrunerKind
from prunesweep.pruning.hooks import forward_with_hooks
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PretrainedConfig, PreTrainedModel


@torch.no_grad()
def block_influence(model: PreTrainedModel, calibration_ids: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """BI of every decoder layer (float64, shape [n_layers]) over all tokens of `calibration_ids`."""
    layers = require_architecture(model).layers(model)
    cos_sums = torch.zeros(len(layers), dtype=torch.float64)

    def collect(index: int):
        def hook(_module, args, kwargs, output) -> None:
            before = args[0] if args else kwargs["hidden_states"]
            after = output[0] if isinstance(output, tuple) else output
            cos_sums[index] += F.cosine_similarity(before.float(), after.float(), dim=-1).double().sum().cpu()

        return hook

    handles = [layer.register_forward_hook(collect(i), with_kwargs=True) for i, layer in enumerate(layers)]
    forward_with_hooks(model, calibration_ids, handles, batch_size)
    return 1 - cos_sums / calibration_ids.numel()


def layers_to_drop(n_layers: int, rate: float, keep_first: bool = False, keep_last: bool = False) -> int:
    """How many layers `rate` (fraction of layers removed) drops: round half up of rate × n_layers; raises
    PrunesweepError (before any forward pass) if that would leave no layer or touch a kept one."""
    if not 0 <= rate < 1:
        raise PrunesweepError(f"layer_drop rate={rate} must be in [0, 1)")
    k = math.floor(rate * n_layers + 0.5)
    if rate > 0 and k == 0:
        raise PrunesweepError(
            f"layer_drop rate={rate:g} removes no layer of {n_layers} (rounded half up); the smallest rate that "
            f"removes one is {0.5 / n_layers:g}"
        )
    droppable = n_layers - int(keep_first) - int(keep_last)
    if k >= n_layers or k > droppable:
        raise PrunesweepError(
            f"layer_drop rate={rate} removes {k} of {n_layers} layers; at most {min(droppable, n_layers - 1)} can go"
        )
    return k


def raise_removes_nothing(rate: float, gone: int, n_layers: int) -> None:
    """One line for a step that would drop no layer beyond the `gone` ones, naming the smallest rate that does."""
    raise PrunesweepError(
        f"layer_drop rate={rate:g} removes no layer beyond the {gone} of {n_layers} already gone; the smallest rate "
        f"that removes one more is {(gone + 0.5) / n_layers:g}"
    )


def lowest_influence(scores: torch.Tensor, k: int, keep_first: bool = False, keep_last: bool = False) -> list[int]:
    """The `k` layers with the lowest BI (ties: the lower index first), sorted, never a kept end layer."""
    candidates = list(range(len(scores)))
    if keep_first:
        candidates.remove(0)
    if keep_last:
        candidates.remove(len(scores) - 1)
    ranked = sorted(candidates, key=lambda i: (float(scores[i]), i))
    return sorted(ranked[:k])


def drop_layers(model: PreTrainedModel, indices: list[int]) -> None:
    """Physically remove decoder layers `indices`; the model stays consistent for the KV cache and reloads
    from its saved folder with the new depth."""
    arch = require_architecture(model)
    n_layers = len(arch.layers(model))
    if len(set(indices)) != len(indices) or not all(0 <= i < n_layers for i in indices):
        raise PrunesweepError(f"layer indices {indices} must be distinct and in [0, {n_layers})")
    if len(indices) >= n_layers:
        raise PrunesweepError(f"cannot drop all {n_layers} layers")
    arch.remove_layers(model, list(indices))


def layer_drop(
    model: PreTrainedModel,
    calibration_ids: torch.Tensor,
    rate: float,
    keep_first: bool = False,
    keep_last: bool = False,
) -> tuple[list[int], torch.Tensor]:
    """ShortGPT: drop round(rate × n_layers) layers of lowest block influence; returns (removed original
    indices, BI of every original layer)."""
    arch = require_architecture(model)
    k = layers_to_drop(len(arch.layers(model)), rate, keep_first, keep_last)
    arch.check_layer_removal(model)
    scores = block_influence(model, calibration_ids)
    removed = lowest_influence(scores, k, keep_first, keep_last)
    drop_layers(model, removed)
    return removed, scores


DENSE_LAYERS_KEY = "prunesweep_dense_layers"  # config attribute: saved with checkpoints, so resumes agree


@dataclass
class LayerDropConfig(PrunerConfig):
    """`rate` = fraction of the dense model's decoder layers removed (e.g. 0.125, 0.25)."""

    name: str = "layer_drop"
    keep_first: bool = False
    keep_last: bool = False


class LayerDropPruner(Pruner):
    """`pruner=layer_drop`: remove whole decoder layers of lowest block influence (ShortGPT)."""

    Config = LayerDropConfig
    kind = PrunerKind.depth

    @property
    def uses_calibration(self) -> bool:
        return True

    def check_architecture(self, config: PretrainedConfig, rates: list[float]) -> None:
        """Every step removes at least one more layer than the step before (one rounding rule: `layers_to_drop`)."""
        gone = 0
        for rate in rates:
            dropped = layers_to_drop(config.num_hidden_layers, rate, self.cfg.keep_first, self.cfg.keep_last)
            if dropped <= gone:
                raise_removes_nothing(rate, gone, config.num_hidden_layers)
            gone = dropped

    def check(self, model: PreTrainedModel) -> None:
        require_architecture(model).check_layer_removal(model)

    def prune_to(self, model: PreTrainedModel, target: float, ctx: PruneContext) -> PruneResult:
        start = time.perf_counter()
        arch = require_architecture(model)
        if getattr(model.config, DENSE_LAYERS_KEY, None) is None:
            setattr(model.config, DENSE_LAYERS_KEY, len(arch.layers(model)))
        dense_layers, dense = getattr(model.config, DENSE_LAYERS_KEY), dense_params(model)
        current = len(arch.layers(model))
        gone = dense_layers - current
        to_drop = layers_to_drop(dense_layers, target, self.cfg.keep_first, self.cfg.keep_last) - gone
        if to_drop <= 0:
            raise_removes_nothing(target, gone, dense_layers)
        removed, _ = layer_drop(model, ctx.calibration(), to_drop / current, self.cfg.keep_first, self.cfg.keep_last)
        details: dict[str, float | int | str] = {
            "layers_removed": ",".join(map(str, removed)),
            "layers_left": len(arch.layers(model)),
            "dense_params": dense,
        }
        return PruneResult(target, 1.0 - count_params(model)[0] / dense, time.perf_counter() - start, details)
