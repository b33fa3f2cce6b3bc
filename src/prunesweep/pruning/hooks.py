"""One calibration pass with forward hooks attached: the shared loop of the statistics collectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.hooks import RemovableHandle

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel


@torch.no_grad()
def forward_with_hooks(
    model: PreTrainedModel, calibration_ids: torch.Tensor, handles: list[RemovableHandle], batch_size: int = 8
) -> None:
    """Run `calibration_ids` (n_samples, seq_len) through `model` in batches, then remove the hooks `handles`
    (also on error)."""
    device = next(model.parameters()).device
    try:
        for batch in calibration_ids.split(batch_size):
            model(input_ids=batch.to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
