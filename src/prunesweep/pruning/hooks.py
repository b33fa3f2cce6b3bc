"""One calibration pass with forward hooks attached: the shared loop of the statistics collectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.hooks import RemovableHandle

from prunesweep.pruning.calibration import forward_layerwise

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel


def forward_with_hooks(
    model: PreTrainedModel, calibration_ids: torch.Tensor, handles: list[RemovableHandle], batch_size: int = 8
) -> None:
    """Run `calibration_ids` (n_samples, seq_len) through `model` in batches, one decoder layer at a time
    (`forward_layerwise`: under `model.offload` one layer's weights on the compute device), then remove the hooks
    `handles` (also on error). Hooks on the decoder layers and the modules inside them see what a whole-model
    forward shows them."""
    try:
        forward_layerwise(model, calibration_ids, batch_size)
    finally:
        for handle in handles:
            handle.remove()
