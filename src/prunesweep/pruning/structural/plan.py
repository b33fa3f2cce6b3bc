"""Which units to remove so that a requested number of *parameters* goes (LLM-Pruner's ratio is a ratio of
groups; here the group ratio is solved from the parameter target and both are reported).

Pools are filled in order: each pool is cut at ratio r = remaining params / params of the pools not yet cut,
so with [attention, mlp] the heads are cut at the shared group ratio (rounded to whole heads) and the
fine-grained MLP channels absorb the rounding. Within a pool, `local` ranking cuts every group (layer) at
the same ratio (the official block-wise default); `global` ranking compares units across layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prunesweep.models.groups import Group, Slice


@dataclass(frozen=True)
class Step:
    """The smallest removal a group allows: one unit, or one head in every KV block, or `step` hidden dims."""

    group: Group
    index: int  # the index-th cheapest step of its group (steps are taken in order)
    units: tuple[int, ...]
    score: float


def removal_steps(group: Group, scores: torch.Tensor) -> list[Step]:
    """The group's allowed removals, cheapest first, leaving at least one step's worth of units per block."""
    per_block, n_steps = group.n_units // group.blocks, group.max_steps
    order = scores.view(group.blocks, per_block).argsort(dim=1, stable=True)[:, : n_steps * group.step]
    units = order + torch.arange(group.blocks)[:, None] * per_block  # (blocks, n_steps * step)
    units = units.view(group.blocks, n_steps, group.step).transpose(0, 1).reshape(n_steps, group.units_per_step)
    step_scores = scores[units].sum(1).tolist()
    return [
        Step(group, i, tuple(u), score)
        for i, (u, score) in enumerate(zip(units.sort(dim=1).values.tolist(), step_scores, strict=True))
    ]


def capacity(pools: list[list[Group]]) -> int:
    """Most parameters the pools can give up (every group keeps its minimum)."""
    return sum(g.max_steps * g.units_per_step * g.unit_params for pool in pools for g in pool)


def _local(pool: list[Group], steps: dict[str, list[Step]], ratio: float) -> list[Step]:
    chosen = []
    for group in pool:
        count = min(round(ratio * group.n_units / group.units_per_step), len(steps[group.name]))
        chosen += steps[group.name][:count]
    return chosen


def _global(pool: list[Group], steps: dict[str, list[Step]], ratio: float) -> list[Step]:
    """Cheapest steps across the pool (score per unit); a group's steps stay a prefix since they ascend."""
    wanted = ratio * sum(g.n_units for g in pool)
    position = {g.name: i for i, g in enumerate(pool)}
    ranked = sorted(
        (s for g in pool for s in steps[g.name]),
        key=lambda s: (s.score / len(s.units), position[s.group.name], s.index),
    )
    chosen, taken = [], 0
    for step in ranked:
        if taken + len(step.units) / 2 > wanted:
            break
        chosen.append(step)
        taken += len(step.units)
    return chosen


def plan_removal(
    pools: list[list[Group]], scores: dict[str, torch.Tensor], params: int, global_ranking: bool
) -> tuple[list[tuple[Group, list[int]]], dict[str, float]]:
    """Units to remove per group to take away about `params` parameters, and the group ratio per pool."""
    steps = {g.name: removal_steps(g, scores[g.name]) for pool in pools for g in pool}
    cost = {g.name: g.unit_params for pool in pools for g in pool}
    pool_params = [sum(g.n_units * cost[g.name] for g in pool) for pool in pools]
    remaining, removals, ratios = params, [], {}
    for i, pool in enumerate(pools):
        ratio = min(1.0, max(0.0, remaining / max(1, sum(pool_params[i:]))))
        chosen = (_global if global_ranking else _local)(pool, steps, ratio)
        units: dict[str, list[int]] = {g.name: [] for g in pool}
        for step in chosen:
            units[step.group.name] += step.units
            remaining -= len(step.units) * cost[step.group.name]
        removals += [(g, sorted(units[g.name])) for g in pool if units[g.name]]
        ratios[pool[0].pool] = sum(map(len, units.values())) / sum(g.n_units for g in pool)
    return removals, ratios


def per_member_removal(
    removals: list[tuple[Group, list[int]]], member_scores: dict[str, torch.Tensor]
) -> list[tuple[Slice, list[int]]]:
    """LLM-Pruner's "w/o dependency" ablation: every member of a group drops as many units as the plan gives
    the group, but its own lowest-scored ones (`member_scores[name]`: one row per slice). Shapes still fit;
    coupled rows and columns no longer correspond."""
    chosen = []
    for group, units in removals:
        n_steps = len(units) // group.units_per_step
        for member, scores in zip(group.slices, member_scores[group.name], strict=True):
            own = [u for step in removal_steps(group, scores)[:n_steps] for u in step.units]
            chosen.append((member, sorted(own)))
    return chosen
