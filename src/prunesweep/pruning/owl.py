"""OWL layer-wise sparsity (Yin et al. 2023, "Outlier Weighed Layerwise Sparsity"): layers with more outliers
in their Wanda scores |W|·‖X‖₂ are pruned less, the mean layer sparsity staying at the target rate.

The mapping follows the official code (luuyin/OWL, `lib/prune_all.py`, `prune_wanda_outlier`): outlier ratios
are min-max scaled to [0, 2λ], shifted to mean (1 − rate) as layer densities, and sparsity = 1 − density. So
the layer sparsities span exactly 2λ around their mean `rate` (the paper's "[S − λ, S + λ]" holds when the
scaled ratios average 1/2; otherwise one side reaches further, up to 2λ)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning.hooks import forward_with_hooks
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel

DEFAULT_M = 5.0  # paper defaults for LLaMA (README: --Hyper_m 5 --Lamda 0.08)
DEFAULT_LAMBDA = 0.08


def check_owl(rate: float = 0.5, m: float = DEFAULT_M, lam: float = DEFAULT_LAMBDA) -> None:
    """One clear line for a bad OWL rate (0 < rate < 1), outlier threshold (m > 0) or lambda (>= 0)."""
    if not 0 < rate < 1:
        raise PrunesweepError(f"OWL rate={rate} must be in (0, 1)")
    if m <= 0:
        raise PrunesweepError(f"OWL m={m} must be > 0")
    if lam < 0:
        raise PrunesweepError(f"OWL lambda={lam} must be >= 0")


@torch.no_grad()
def activation_norms(
    model: PreTrainedModel, calibration_ids: torch.Tensor, batch_size: int = 8
) -> dict[str, torch.Tensor]:
    """Squared L2 norm of every input feature of every prunable linear, summed over all calibration tokens
    (float32), keyed "<layer index>.<linear name>"; one forward pass of the model over the calibration set."""
    arch = require_architecture(model)
    norms: dict[str, torch.Tensor] = {}

    def collect(key: str):
        def hook(_module, args, _output) -> None:
            x = args[0].detach().float()
            squared = x.pow(2).reshape(-1, x.shape[-1]).sum(dim=0)
            norms[key] = norms[key] + squared if key in norms else squared

        return hook

    handles = [
        linear.register_forward_hook(collect(f"{index}.{name}"))
        for index, layer in enumerate(arch.layers(model))
        for name, linear in arch.linears(layer).items()
    ]
    forward_with_hooks(model, calibration_ids, handles, batch_size)
    return norms


@torch.no_grad()
def outlier_ratios(model: PreTrainedModel, act_norms: dict[str, torch.Tensor], m: float = DEFAULT_M) -> torch.Tensor:
    """Per layer: the fraction of its Wanda scores |W_ij|·‖X_j‖₂ (all its linears together) above m × their
    mean (the official `check_outlier_mean`, as a fraction instead of a percentage)."""
    check_owl(m=m)
    arch = require_architecture(model)
    ratios = []
    for index, layer in enumerate(arch.layers(model)):
        scores = []
        for name, linear in arch.linears(layer).items():
            key = f"{index}.{name}"
            if key not in act_norms:
                raise PrunesweepError(f"OWL: no activation norms for linear {key!r}")
            weight = out_in_weight(linear).detach().float()
            scores.append((weight.abs() * act_norms[key].float().sqrt().to(weight.device)).flatten())
        layer_scores = torch.cat(scores)
        ratios.append((layer_scores > m * layer_scores.mean()).double().mean())
    return torch.stack(ratios)


def owl_layer_rates(outlier_ratios: torch.Tensor, rate: float, lam: float = DEFAULT_LAMBDA) -> list[float]:
    """Layer sparsities with mean `rate`, spanning 2·lam, lower where the outlier ratio is higher."""
    check_owl(rate=rate, lam=lam)
    ratios = torch.as_tensor(outlier_ratios, dtype=torch.float64)
    spread = ratios.max() - ratios.min()
    if spread == 0:  # every layer alike (the official code would divide by zero): uniform sparsity
        return [rate] * ratios.numel()
    scaled = (ratios - ratios.min()) / spread * (2 * lam)
    density = scaled - scaled.mean() + (1 - rate)
    rates = (1 - density).tolist()
    if not all(0 <= r < 1 for r in rates):
        raise PrunesweepError(
            f"OWL rate={rate} with lambda={lam} gives layer sparsities in [{min(rates):.4f}, {max(rates):.4f}],"
            " outside [0, 1): lower lambda"
        )
    return rates


def owl_rates(
    model: PreTrainedModel,
    calibration_ids: torch.Tensor,
    rate: float,
    m: float = DEFAULT_M,
    lam: float = DEFAULT_LAMBDA,
) -> list[float]:
    """OWL sparsity of each decoder layer of the dense `model` for a global `rate`."""
    check_owl(rate, m, lam)
    return owl_layer_rates(outlier_ratios(model, activation_norms(model, calibration_ids), m), rate, lam)
