"""Physical channel removal on single modules, through torch-pruning's pruning functions.

torch-pruning covers nn.Linear, nn.Embedding and nn.LayerNorm directly. HF's GPT-2 `Conv1D` (weight stored
transposed, `nf`/`nx` attributes) and LLaMA's RMSNorm are not torch-pruning module types, so their tensors go
through torch-pruning's generic `ParameterPruner` along the right axis and the size attributes are set here."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner.function import ParameterPruner
from transformers.pytorch_utils import Conv1D

KINDS = ("out", "in")  # which side of the module the channel is on: its output features or its input features


def channel_axis(module: nn.Module, kind: str) -> int:
    """Axis of `module.weight` that indexes the channels of side `kind`."""
    if isinstance(module, nn.Linear):
        return 0 if kind == "out" else 1
    if isinstance(module, Conv1D):  # weight is (in, out)
        return 1 if kind == "out" else 0
    if isinstance(module, nn.Embedding):
        return 1
    if module.weight.dim() == 1:  # LayerNorm / RMSNorm
        return 0
    raise TypeError(f"no channel axis for {type(module).__name__}")


def channel_params(module: nn.Module, kind: str) -> int:
    """Parameters removed with one channel of side `kind` (weight slice plus bias entry)."""
    weight = module.weight
    per_channel = weight.numel() // weight.shape[channel_axis(module, kind)]
    bias = getattr(module, "bias", None)
    has_bias = isinstance(bias, torch.Tensor) and (kind == "out" or weight.dim() == 1)
    return per_channel + int(has_bias)


def prune_channels(module: nn.Module, kind: str, idxs: Sequence[int]) -> None:
    """Remove channels `idxs` of side `kind` from `module` in place."""
    idxs = sorted(set(idxs))
    if not idxs:
        return
    if isinstance(module, nn.Linear):
        (tp.prune_linear_out_channels if kind == "out" else tp.prune_linear_in_channels)(module, idxs)
    elif isinstance(module, nn.Embedding):
        tp.prune_embedding_out_channels(module, idxs)
    elif isinstance(module, nn.LayerNorm):
        tp.prune_layernorm_out_channels(module, idxs)
    elif isinstance(module, Conv1D):
        module.weight = ParameterPruner(pruning_dim=channel_axis(module, kind)).prune_out_channels(module.weight, idxs)
        if kind == "out":
            module.bias = tp.prune_parameter_out_channels(module.bias, idxs)
        module.nx, module.nf = module.weight.shape
    elif module.weight.dim() == 1:  # RMSNorm-style: a weight (and maybe a bias) over the hidden dim
        module.weight = tp.prune_parameter_out_channels(module.weight, idxs)
        if isinstance(getattr(module, "bias", None), torch.Tensor):
            module.bias = tp.prune_parameter_out_channels(module.bias, idxs)
    else:
        raise TypeError(f"cannot prune channels of {type(module).__name__}")
