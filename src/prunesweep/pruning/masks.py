"""Sparsity accounting and mask keeping shared by every unstructured / semi-structured method.

A pruned weight is an exact zero in the tensor itself (masks are made permanent), so checkpoints are plain HF
weights; `MaskKeeper` re-zeroes the pruned positions after training steps or a LoRA merge."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn


def prunable_linears(model: nn.Module, targets: list[str]) -> dict[str, nn.Module]:
    """Linear/Conv1D modules whose attribute name is in `targets` (embeddings and lm_head never match)."""
    found = {}
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in targets and isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2:
            found[name] = module
    return found


def sparsity_of(modules: Iterable[nn.Module]) -> float:
    """Fraction of exactly-zero weights over `modules`."""
    modules = list(modules)
    zeros = sum(int((m.weight == 0).sum().item()) for m in modules)
    return zeros / max(1, sum(m.weight.numel() for m in modules))


def zero_smallest_(weights: list[torch.Tensor], k: int) -> None:
    """Zero, in place, exactly the `k` smallest |w| over all `weights`; ties at the threshold go in list order.

    Written by hand rather than with `torch.nn.utils.prune.global_unstructured`, which concatenates every score,
    keeps int64 top-k indices and a `weight_orig` + mask per tensor: several times the weights' bytes. Here the
    threshold is found by bisection on the bit patterns of |w| (non-negative floats order as their bits), so
    the extra memory is one tensor's scratch at a time."""
    total = sum(w.numel() for w in weights)
    if not 0 <= k <= total:
        raise ValueError(f"cannot zero {k} of {total} weights")
    if k == 0:
        return

    def count_at_most(bits: int) -> int:
        return sum(int((_abs_bits(w) <= bits).sum()) for w in weights)

    low, high = 0, max(int(_abs_bits(w).max()) for w in weights)  # count_at_most(high) == total >= k
    while low < high:
        middle = (low + high) // 2
        if count_at_most(middle) >= k:
            high = middle
        else:
            low = middle + 1
    left = k - count_at_most(low - 1) if low > 0 else k  # how many weights equal to the threshold to zero
    for w in weights:
        bits = _abs_bits(w)
        zero = (bits < low).flatten()
        if left > 0:
            ties = (bits == low).flatten().nonzero().flatten()[:left]
            zero[ties] = True
            left -= ties.numel()
        w.masked_fill_(zero.view(w.shape), 0)


def _abs_bits(weight: torch.Tensor) -> torch.Tensor:
    """|w| in float32, viewed as int32: ordered like the magnitudes themselves."""
    return weight.detach().abs().float().view(torch.int32)


def module_sparsity(model: nn.Module, targets: list[str]) -> float:
    """Achieved sparsity of the prunable layers of `model`."""
    return sparsity_of(prunable_linears(model, targets).values())


class MaskKeeper:
    """Remembers which weights of the target linears are pruned (zero) and keeps them at zero. The masks are kept
    one bit a weight (1/32 of float32 weights; a bool mask would be a byte)."""

    def __init__(self, targets: list[str]) -> None:
        self.targets = targets
        self.masks: dict[str, torch.Tensor] = {}

    def capture(self, model: nn.Module) -> None:
        """Take the current zeros of the target linears as the mask (after a pruning step, or on resume)."""
        self.masks = {name: _pack(module.weight != 0) for name, module in prunable_linears(model, self.targets).items()}

    def reapply(self, model: nn.Module) -> None:
        """Zero the pruned positions again (after full fine-tuning steps or a LoRA merge)."""
        modules = prunable_linears(model, self.targets)
        if not self.masks:  # e.g. resumed from a checkpoint: the zeros are the mask
            self.capture(model)
        with torch.no_grad():
            for name, packed in self.masks.items():
                weight = modules[name].weight
                weight.mul_(_unpack(packed, weight.shape).to(weight.device, weight.dtype))


def _pack(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as uint8 bits (numpy's packbits: torch has no bit packing)."""
    return torch.from_numpy(np.packbits(mask.detach().cpu().flatten().numpy()))


def _unpack(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    count = math.prod(shape)
    return torch.from_numpy(np.unpackbits(packed.numpy(), count=count).astype(bool)).view(shape)
