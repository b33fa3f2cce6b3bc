"""Calibration inputs for the layer-wise pruning tests: seeded random token windows, and the input a linear
actually receives in a plain forward (captured by hand, independently of the calibration driver)."""

from __future__ import annotations

import torch
from torch import nn


def calibration_ids(model: nn.Module, n_samples: int = 8, seq_len: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (n_samples, seq_len), generator=generator)


@torch.no_grad()
def linear_input(model: nn.Module, linear: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """All tokens' inputs to `linear` during `model(ids)`, as (tokens, in_features) float64."""
    seen: list[torch.Tensor] = []
    handle = linear.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    finally:
        handle.remove()
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in seen]).double()
