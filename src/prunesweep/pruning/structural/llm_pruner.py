"""LLM-Pruner (Ma et al. 2023) as a `Pruner`: discover coupled groups, score them on calibration data,
physically remove the least important ones. `l2` and `random` are the same pruner with another importance."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from prunesweep.config.schema import PrunerConfig, choices
from prunesweep.models.architecture import ATTENTION_UNITS, Architecture, require_architecture
from prunesweep.models.groups import Group, Slice, remove_slice_units
from prunesweep.models.offload import offloader_of
from prunesweep.models.params import count_params, dense_params
from prunesweep.pruning.base import PruneContext, Pruner, PruneResult, PrunerKind
from prunesweep.pruning.structural.importance import (
    AGGREGATIONS,
    GRADIENT_BASED,
    IMPORTANCES,
    aggregate,
    score_groups,
)
from prunesweep.pruning.structural.plan import capacity, per_member_removal, plan_removal
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel

Importance = choices("Importance", *IMPORTANCES)
Aggregation = choices("Aggregation", *AGGREGATIONS)
Mode = choices("Mode", "block", "channel")
Grouping = choices("Grouping", "dependency", "none")
AttentionUnit = choices("AttentionUnit", *ATTENTION_UNITS)


def default_layer_range(n_layers: int) -> tuple[int, int]:
    """LLM-Pruner's LLaMA-7B block range [4, 30) of 32 layers, scaled: first and last layers always kept."""
    return max(1, round(n_layers / 8)), n_layers - max(1, round(n_layers / 16))


def cut_layer_by_layer(model: PreTrainedModel, arch: Architecture, removals: list[tuple[Slice, list[int]]]) -> None:
    """Remove the units, one decoder layer's modules at a time, then those outside the layers, and sync the model.
    Under `model.offload=disk` each layer goes back to its file before the next is cut, so only one layer's new
    weights are anonymous memory at a time (every cut is local to its module: the order changes nothing)."""
    offloader = offloader_of(model)
    owner = {id(m): index for index, layer in enumerate(arch.layers(model)) for m in layer.modules()}
    by_layer: dict[int | None, list[tuple[Slice, list[int]]]] = defaultdict(list)
    for member, units in removals:
        by_layer[owner.get(id(member.module))].append((member, units))
    for index in sorted(i for i in by_layer if i is not None):
        remove_slice_units(by_layer[index])
        offloader.write_back(model, index)
    remove_slice_units(by_layer.get(None, []))
    arch.sync(model)  # re-ties a head to a cut embedding before the weights outside the layers are written
    if None in by_layer:
        offloader.write_back(model, None)


@dataclass
class LLMPrunerConfig(PrunerConfig):
    """`rate` = fraction of the dense model's total parameters removed (the group ratio is solved from it)."""

    name: str = "llm_pruner"
    importance: Importance = Importance["element1"]  # type: ignore[valid-type]
    aggregation: Aggregation = Aggregation["sum"]  # type: ignore[valid-type]
    mode: Mode = Mode["block"]  # type: ignore[valid-type]  # block: heads/KV groups + MLP channels; channel: hidden
    # block mode prunes layers [layer_start, layer_end); None scales LLM-Pruner's LLaMA-7B [4, 30) of 32 layers:
    # start = max(1, round(n / 8)), end = n - max(1, round(n / 16)) (SmolLM2's 30 layers -> [4, 28))
    layer_start: int | None = None
    layer_end: int | None = None  # exclusive
    global_ranking: bool = False  # block mode: rank units across layers (non-uniform) instead of per layer
    attention_unit: AttentionUnit = AttentionUnit["kv_group"]  # type: ignore[valid-type]
    prune_attention: bool = True
    prune_mlp: bool = True
    # dependency: coupled rows/columns go together (LLM-Pruner); none: each weight matrix drops its own
    # lowest-scored units, as many as its group would (the paper's Table 5 "w/o dependency" ablation)
    grouping: Grouping = Grouping["dependency"]  # type: ignore[valid-type]


class LLMPruner(Pruner):
    """Structural pruning of attention heads / KV groups and MLP channels (`block`) or hidden dims (`channel`).

    `target` in `prune_to` is the cumulative fraction of the dense model's *total* parameters removed (tied
    embeddings counted once); the group ratio that achieves it is solved, and both are reported."""

    Config = LLMPrunerConfig
    kind = PrunerKind.structural

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        if cfg.mode == "block" and not (cfg.prune_attention or cfg.prune_mlp):
            raise PrunesweepError("pruner.mode=block with prune_attention=false and prune_mlp=false prunes nothing")

    @property
    def uses_calibration(self) -> bool:
        return self.cfg.importance in GRADIENT_BASED

    def label(self) -> str:
        return f"{self.cfg.name}.{self.cfg.importance.value}"

    def record_fields(self) -> dict[str, Any]:
        return {
            "importance": str(self.cfg.importance.value),
            "mode": str(self.cfg.mode.value),
            "grouping": str(self.cfg.grouping.value),
        }

    def check(self, model: PreTrainedModel) -> None:
        arch = require_architecture(model)
        self.layer_range(len(arch.layers(model)))

    def layer_range(self, n_layers: int) -> range:
        """Block-mode layers [layer_start, layer_end), defaults scaled from the paper's LLaMA-7B setting."""
        start, end = default_layer_range(n_layers)
        start = start if self.cfg.layer_start is None else self.cfg.layer_start
        end = end if self.cfg.layer_end is None else self.cfg.layer_end
        if not 0 <= start < end <= n_layers:
            raise PrunesweepError(f"pruner layers [{start}, {end}) are not a non-empty range of {n_layers} layers")
        return range(start, end)

    def pools(self, model: PreTrainedModel, arch: Architecture) -> list[list[Group]]:
        """Groups to cut, coarsest pool first (see `plan.plan_removal`)."""
        if self.cfg.mode == "channel":
            return [[arch.hidden_group(model)]]
        layers = self.layer_range(len(arch.layers(model)))
        pools = []
        if self.cfg.prune_attention:
            pools.append([arch.attention_group(model, i, self.cfg.attention_unit) for i in layers])
        if self.cfg.prune_mlp:
            pools.append([arch.mlp_group(model, i) for i in layers])
        return pools

    def scores(self, model: PreTrainedModel, groups: list[Group], ctx: PruneContext, params: int) -> dict:
        """Unit scores per group name (grouping=none: per member, one row per slice), shared through
        `ctx.memo` by one-shot cells that start from the same model (`params` tells the steps of an iterative
        trajectory apart: they re-estimate gradients)."""
        aggregation = self.cfg.aggregation if self.cfg.grouping == "dependency" else None

        def compute() -> dict[str, torch.Tensor]:
            calibration = ctx.calibration() if self.cfg.importance in GRADIENT_BASED else None
            return score_groups(model, groups, self.cfg.importance, aggregation, calibration, ctx.seed)

        return ctx.memo(f"llm_pruner_importance@{params}", compute)

    def prune_to(self, model: PreTrainedModel, target: float, ctx: PruneContext) -> PruneResult:
        start = time.perf_counter()
        arch = require_architecture(model)
        arch.sync(model)
        dense, before = dense_params(model), count_params(model)[0]
        to_remove = round(target * dense) - (dense - before)
        details: dict[str, float | int | str] = {
            "mode": self.cfg.mode.value,
            "importance": self.cfg.importance.value,
            "aggregation": self.cfg.aggregation.value,
            "grouping": self.cfg.grouping.value,
            "dense_params": dense,
            "params_before": before,
        }
        if to_remove > 0:
            pools = self.pools(model, arch)
            most = capacity(pools)
            if to_remove > most:
                raise PrunesweepError(
                    f"llm_pruner: rate {target:.3f} is out of reach for mode={self.cfg.mode.value} "
                    f"(at most {(dense - before + most) / dense:.3f} of the parameters with these layers/units)"
                )
            scores = self.scores(model, [g for pool in pools for g in pool], ctx, before)
            details["importance_seconds"] = time.perf_counter() - start
            if self.cfg.grouping == "dependency":
                removals, ratios = plan_removal(pools, scores, to_remove, self.cfg.global_ranking)
                cut_layer_by_layer(model, arch, [(s, units) for group, units in removals for s in group.slices])
            else:  # how many units each group loses still follows the aggregated scores
                group_scores = {name: aggregate(table, self.cfg.aggregation) for name, table in scores.items()}
                removals, ratios = plan_removal(pools, group_scores, to_remove, self.cfg.global_ranking)
                cut_layer_by_layer(model, arch, per_member_removal(removals, scores))
            details.update({f"group_ratio_{pool}": ratio for pool, ratio in ratios.items()})
        after = count_params(model)[0]
        details["params_after"] = after
        if self.cfg.mode == "block":
            layers = self.layer_range(len(arch.layers(model)))
            details.update(layer_start=layers.start, layer_end=layers.stop)
        return PruneResult(target, 1.0 - after / dense, time.perf_counter() - start, details)
