"""SparseGPT (Frantar & Alistarh 2023): per linear, choose the mask by the OBS saliency w^2 / [H^-1]_qq^2 and
update the not-yet-processed weights to compensate (the official `fasterprune`: Cholesky factor of the damped
inverse Hessian, lazy batched updates over blocks of columns).

One deliberate difference from the official code: an unstructured block prunes exactly round(rate * block
size) weights (official `tmp <= sorted[int(numel * rate)]` prunes one more, plus ties), so the achieved
sparsity is the requested one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunesweep.config.schema import bounded
from prunesweep.models.architecture import out_in_weight
from prunesweep.pruning.layerwise import LayerwiseConfig, LayerwiseMethod, LayerwisePruner
from prunesweep.pruning.nm import NMPattern, nm_prune_mask, parse_pattern
from prunesweep.util.errors import PrunesweepError


def _check_blocksize(blocksize: int, nm: NMPattern | None) -> None:
    if blocksize < 1 or (nm is not None and blocksize % nm.m):
        raise PrunesweepError(f"sparsegpt blocksize={blocksize} must be positive (and a multiple of M for N:M)")


def _lowest_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Bool mask of the `count` lowest entries of `scores` (over the whole tensor)."""
    lowest = torch.topk(scores.flatten(), count, largest=False).indices
    return (
        torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device).index_fill_(0, lowest, True).view_as(scores)
    )


def _upper_inverse_cholesky(hessian: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor of the damped H^-1: row q holds the OBS update of column q once 0..q-1 are gone."""
    hessian.diagonal().add_(percdamp * hessian.diagonal().mean())
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(hessian))
    return torch.linalg.cholesky(inverse, upper=True)


def _fasterprune(
    weight: torch.Tensor, hessian: torch.Tensor, rate: float, nm: NMPattern | None, blocksize: int, percdamp: float
) -> torch.Tensor:
    """The official `fasterprune` on an (out, in) weight: returns the pruned, OBS-updated copy."""
    dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
    W = weight.detach().to(dtype).clone()
    H = hessian.detach().to(dtype).clone()
    dead = torch.diag(H) == 0  # inputs never active: no information, prune them for free
    H[dead, dead] = 1
    W[:, dead] = 0
    Hinv = _upper_inverse_cholesky(H, percdamp)
    del H
    columns = W.shape[1]
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        d = torch.diag(Hinv1)
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        if nm is None:
            mask1 = _lowest_mask(W1**2 / d**2, round(rate * W1.numel()))
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            if nm is not None and i % nm.m == 0:
                group = slice(i, i + nm.m)
                mask1[:, group] = nm_prune_mask(W1[:, group] ** 2 / d[group] ** 2, nm.n, nm.m)
            w = W1[:, i]
            q = w.masked_fill(mask1[:, i], 0)
            err = (w - q) / d[i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            Q1[:, i], Err1[:, i] = q, err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W


def sparsegpt_prune_weight(
    weight_out_in: torch.Tensor,
    hessian: torch.Tensor,
    rate: float | None,
    pattern: str = "unstructured",
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> torch.Tensor:
    """The SparseGPT-pruned copy of one (out, in) weight given its input Hessian (in, in); computed in float32
    (float64 if the weight is), returned in the weight's dtype. `rate` is ignored for N:M patterns."""
    nm = parse_pattern(pattern)
    _check_blocksize(blocksize, nm)
    if nm is not None:
        nm.check_divides(weight_out_in.shape[1], "weight")
    elif rate is None or not 0.0 <= rate < 1.0:
        raise PrunesweepError(f"sparsegpt rate={rate} must be in [0, 1)")
    return _fasterprune(weight_out_in, hessian, rate or 0.0, nm, blocksize, percdamp).to(weight_out_in.dtype)


@dataclass(frozen=True)
class SparseGPT(LayerwiseMethod):
    """SparseGPT with the official defaults: the layer-wise driver over `prune_linear`."""

    blocksize: int = 128
    percdamp: float = 0.01
    kinds = ("hessian",)

    def check(self, nm: NMPattern | None) -> None:
        _check_blocksize(self.blocksize, nm)

    @torch.no_grad()
    def prune_linear(
        self, module: nn.Module, stats: dict[str, torch.Tensor], rate: float, nm: NMPattern | None
    ) -> None:
        weight = out_in_weight(module)
        weight.copy_(_fasterprune(weight, stats["hessian"], rate, nm, self.blocksize, self.percdamp))


prune_sparsegpt = SparseGPT()


@dataclass
class SparseGPTConfig(LayerwiseConfig):
    name: str = "sparsegpt"
    blocksize: int = bounded(128, 1)
    percdamp: float = bounded(0.01, 0, above=True)


class SparseGPTPruner(LayerwisePruner):
    """`pruner=sparsegpt`: OBS reconstruction with the calibration Hessian (block size, dampening from config)."""

    Config = SparseGPTConfig
    method = prune_sparsegpt

    def __init__(self, cfg: Any) -> None:
        self.method = SparseGPT(blocksize=cfg.blocksize, percdamp=cfg.percdamp)
        super().__init__(cfg)
