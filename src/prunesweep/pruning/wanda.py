"""Wanda (Sun et al. 2024, "A Simple and Effective Pruning Approach for LLMs"): score |W_ij| * ||X_j||_2 and
prune the lowest scores of each output row (or of each N:M group), no weight update."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunesweep.models.architecture import out_in_weight
from prunesweep.pruning.layerwise import LayerwiseConfig, LayerwiseMethod, LayerwisePruner
from prunesweep.pruning.nm import NMPattern, nm_prune_mask


def wanda_scores(weight: torch.Tensor, scaler_row: torch.Tensor) -> torch.Tensor:
    """|W| * sqrt(scaler_row), float32, (out, in); `scaler_row` is the per-input sum of squares (any scale)."""
    return weight.detach().abs().float() * scaler_row.float().sqrt()


def row_prune_mask(scores: torch.Tensor, rate: float) -> torch.Tensor:
    """Bool mask (True = prune) of the round(rate * in) lowest scores of every row."""
    lowest = torch.topk(scores, round(rate * scores.shape[1]), dim=1, largest=False).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, lowest, True)


def wanda_mask(weight: torch.Tensor, scaler_row: torch.Tensor, rate: float, nm: NMPattern | None) -> torch.Tensor:
    scores = wanda_scores(weight, scaler_row)
    return row_prune_mask(scores, rate) if nm is None else nm_prune_mask(scores, nm.n, nm.m)


class Wanda(LayerwiseMethod):
    """Wanda: the layer-wise driver over `prune_linear`."""

    kinds = ("scaler_row",)

    @torch.no_grad()
    def prune_linear(
        self, module: nn.Module, stats: dict[str, torch.Tensor], rate: float, nm: NMPattern | None
    ) -> None:
        """Zero the Wanda mask of one linear (nn.Linear or Conv1D) in place."""
        weight = out_in_weight(module)
        weight.masked_fill_(wanda_mask(weight, stats["scaler_row"], rate, nm), 0)


prune_wanda = Wanda()


@dataclass
class WandaConfig(LayerwiseConfig):
    name: str = "wanda"


class WandaPruner(LayerwisePruner):
    """`pruner=wanda` (and `pruner=owl`: Wanda with OWL layer ratios)."""

    Config = WandaConfig
    method = prune_wanda
