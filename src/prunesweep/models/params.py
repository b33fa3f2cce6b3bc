"""Parameter counts of a model, and the dense count a pruned model remembers in its config."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel

DENSE_PARAMS_KEY = "prunesweep_dense_params"  # config attribute: saved with checkpoints, so resumes agree


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) parameters, counting tied weights once."""
    total = nonzero = 0
    seen: set[int] = set()
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        nonzero += int(torch.count_nonzero(param).item())
    return total, nonzero


def dense_params(model: PreTrainedModel) -> int:
    """Total parameters of the dense model this one was pruned from (recorded in its config on first use)."""
    if getattr(model.config, DENSE_PARAMS_KEY, None) is None:
        setattr(model.config, DENSE_PARAMS_KEY, count_params(model)[0])
    return int(getattr(model.config, DENSE_PARAMS_KEY))
