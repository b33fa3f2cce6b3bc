"""N:M semi-structured sparsity (Mishra et al. 2021; the 2:4 / 4:8 patterns of SparseGPT and Wanda): in every
group of M consecutive input weights of an output row at most N stay non-zero."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from prunesweep.util.errors import PrunesweepError

UNSTRUCTURED = "unstructured"


@dataclass(frozen=True)
class NMPattern:
    """Keep `n` of every `m` consecutive input weights."""

    n: int
    m: int

    @property
    def rate(self) -> float:
        """The sparsity the pattern implies."""
        return 1.0 - self.n / self.m

    def check_rates(self, rates: list[float]) -> None:
        """The pattern fixes the sparsity: one step, at exactly its implied rate."""
        if [round(r, 9) for r in rates] != [round(self.rate, 9)]:
            raise PrunesweepError(
                f"pattern {self.n}:{self.m} implies sparsity {self.rate:g} in one step; the run asks for "
                f"{', '.join(f'{r:g}' for r in rates)} (set pruner.rate={self.rate:g} with a one-step schedule)"
            )

    def check_divides(self, in_features: int, layer: str) -> None:
        if in_features % self.m:
            raise PrunesweepError(
                f"pattern {self.n}:{self.m}: {layer} has {in_features} inputs, not a multiple of {self.m}"
            )


def parse_pattern(pattern: str) -> NMPattern | None:
    """`"unstructured"` -> None, `"N:M"` (0 < N < M) -> NMPattern."""
    if pattern == UNSTRUCTURED:
        return None
    match = re.fullmatch(r"(\d+):(\d+)", pattern)
    if match is None:
        raise PrunesweepError(f"sparsity pattern {pattern!r} is neither {UNSTRUCTURED!r} nor 'N:M' (e.g. '2:4')")
    n, m = int(match[1]), int(match[2])
    if not 0 < n < m:
        raise PrunesweepError(f"sparsity pattern {pattern!r} needs 0 < N < M")
    return NMPattern(n, m)


def nm_prune_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Bool mask (True = prune) of the m - n lowest `scores` in every group of m consecutive inputs of each row.

    `scores` is (out, in) with in % m == 0."""
    rows, columns = scores.shape
    groups = scores.reshape(rows, columns // m, m)
    lowest = torch.topk(groups, m - n, dim=-1, largest=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, lowest, True)
    return mask.reshape(rows, columns)


@torch.no_grad()
def magnitude_nm_(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """N:M magnitude pruning in place: zero the m - n smallest |w| of every group. `weight` is (out, in), e.g.
    `out_in_weight(module)` (a view, so a Conv1D's weight is edited too). Returns the pruned mask."""
    mask = nm_prune_mask(weight.abs(), n, m)
    weight.masked_fill_(mask, 0)
    return mask
