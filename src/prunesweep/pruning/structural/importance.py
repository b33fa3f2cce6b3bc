"""Group importance as in LLM-Pruner (Ma et al. 2023, eq. 2-5 and the official `TaylorImportance`).

Per group member W (with the calibration-loss gradient g and the Fisher diagonal F = mean of per-sample g^2):
  l2          sum W^2 over the unit's slice (official: MagnitudeImportance(p=2))
  vector      |sum W*g| over the unit's slice (eq. 3: the whole member slice at once)
  element1    sum |W*g| (eq. 4, first order)
  element2    sum |W^2 F / 2| (second order, Fisher approximation of the Hessian diagonal)
  element1+2  sum |W*g - W^2 F / 2| (first and second order together, as the official `param_mix`)
  random      uniform noise per unit
and the members' unit scores are aggregated with sum / mean / max / prod / last (the output-side member)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from prunesweep.models.groups import Group, Slice
from prunesweep.models.surgery import channel_axis
from prunesweep.pruning.structural.gradients import Gradients, calibration_gradients

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel

IMPORTANCES = ("l2", "random", "vector", "element1", "element2", "element1+2")
AGGREGATIONS = ("sum", "mean", "max", "prod", "last")
GRADIENT_BASED = ("vector", "element1", "element2", "element1+2")
SECOND_ORDER = ("element2", "element1+2")


def member_scores(member: Slice, n_units: int, importance: str, gradients: Gradients | None) -> torch.Tensor:
    """Score of each of the `n_units` units from one group member."""
    weight = member.module.weight
    w = weight.detach().float()
    if importance == "l2":
        elementwise = w.square()
    else:
        assert gradients is not None, f"{importance} importance needs calibration gradients"
        first = w * gradients.grad[id(weight)]
        if importance in SECOND_ORDER:
            assert gradients.fisher is not None
            second = 0.5 * w.square() * gradients.fisher[id(weight)]
            elementwise = second if importance == "element2" else first - second
        else:
            elementwise = first
        if importance != "vector":
            elementwise = elementwise.abs()
    axis = channel_axis(member.module, member.kind)
    per_channel = elementwise.movedim(axis, 0).reshape(w.shape[axis], -1).sum(1)
    span = per_channel[member.offset : member.offset + n_units * member.width]
    per_unit = span.view(n_units, member.width).sum(1)
    return per_unit.abs() if importance == "vector" else per_unit


def aggregate(scores: torch.Tensor, aggregation: str) -> torch.Tensor:
    """Reduce (members, units) scores to one score per unit."""
    if aggregation == "sum":
        return scores.sum(0)
    if aggregation == "mean":
        return scores.mean(0)
    if aggregation == "max":
        return scores.amax(0)
    if aggregation == "prod":  # ranked in log space: a product over ~200 hidden-group members underflows
        return scores.clamp_min(torch.finfo(scores.dtype).tiny).log().sum(0)
    if aggregation == "last":
        return scores[-1]
    raise ValueError(f"unknown aggregation {aggregation!r}")


def member_table(group: Group, importance: str, gradients: Gradients | None) -> torch.Tensor:
    """(members, units) scores of `group`, one row per slice."""
    return torch.stack([member_scores(s, group.n_units, importance, gradients) for s in group.slices])


def score_groups(
    model: PreTrainedModel,
    groups: Sequence[Group],
    importance: str,
    aggregation: str | None,
    calibration: torch.Tensor | None,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Scores of every group by name; with `aggregation=None` the (members, units) table of each group instead
    (random: independent noise per member). `calibration` is needed for the gradient-based importances."""
    if importance == "random":
        generator = torch.Generator().manual_seed(seed)
        shape = {g.name: (g.n_units,) if aggregation else (len(g.slices), g.n_units) for g in groups}
        return {g.name: torch.rand(shape[g.name], generator=generator) for g in groups}
    if importance in GRADIENT_BASED:
        assert calibration is not None, f"{importance} importance needs a calibration batch"
        tables = gradient_tables(model, groups, importance, calibration)
    else:
        tables = {g.name: member_table(g, importance, None) for g in groups}
    if aggregation is None:
        return tables
    return {name: aggregate(table, aggregation) for name, table in tables.items()}


def gradient_tables(
    model: PreTrainedModel, groups: Sequence[Group], importance: str, calibration: torch.Tensor
) -> dict[str, torch.Tensor]:
    """(members, units) scores of every group from the calibration gradients, each member scored as soon as its
    weight's gradient is final, so only one layer's gradients are held at a time."""
    users: dict[int, list[tuple[Group, int]]] = {}
    for group in groups:
        for k, member in enumerate(group.slices):
            users.setdefault(id(member.module.weight), []).append((group, k))
    rows: dict[tuple[str, int], torch.Tensor] = {}

    def score(params: list, gradients: Gradients) -> None:
        for p in params:
            for group, k in users[id(p)]:
                rows[group.name, k] = member_scores(group.slices[k], group.n_units, importance, gradients)

    params = list({id(s.module.weight): s.module.weight for g in groups for s in g.slices}.values())
    calibration_gradients(model, calibration, params, importance in SECOND_ORDER, complete=score)
    return {g.name: torch.stack([rows[g.name, k] for k in range(len(g.slices))]) for g in groups}
