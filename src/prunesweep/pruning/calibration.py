"""Layer-wise calibration: run the decoder layers one at a time on captured inputs and collect, per prunable
linear, the input statistics Wanda and SparseGPT prune from.

As in the official Wanda/SparseGPT code, the inputs of layer 0 (hidden states and whatever the model passes
a decoder layer: attention mask, position ids / embeddings, ...) are captured by a pre-hook that stops the
forward; each layer is then run on them and its outputs become the next layer's inputs. Any model the
architecture adapter knows works, since the captured call is replayed as is.

Statistics (float32, running averages over calibration sequences exactly like the official `add_batch`):
- `scaler_row` (Wanda): sum over tokens of x_j^2 / n_samples, shape (in,)
- `hessian` (SparseGPT): H = 2 / n_samples * sum over tokens of x x^T, shape (in, in)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.models.offload import offloader_of
from prunesweep.util.console import bar
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel

STATISTICS = ("scaler_row", "hessian")
LayerStatistics = dict[str, dict[str, torch.Tensor]]  # linear name -> statistic name -> tensor
PruneLayer = Callable[[int, nn.Module, LayerStatistics], None]


@dataclass(frozen=True)
class LayerInput:
    """One batch of calibration sequences as a decoder layer receives it."""

    hidden: torch.Tensor
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class InputStatistics:
    """Running statistics of the inputs of one linear."""

    def __init__(self, in_features: int, kinds: tuple[str, ...], device: torch.device) -> None:
        self.samples = 0
        self.tensors = {}
        if "scaler_row" in kinds:
            self.tensors["scaler_row"] = torch.zeros(in_features, device=device)
        if "hessian" in kinds:
            self.tensors["hessian"] = torch.zeros(in_features, in_features, device=device)

    def add_batch(self, inputs: torch.Tensor) -> None:
        """Fold in a (batch, seq, in) input: old averages scaled by n / (n + batch), as the official code."""
        batch = inputs.shape[0] if inputs.dim() == 3 else 1
        x = inputs.reshape(-1, inputs.shape[-1]).float()
        total = self.samples + batch
        for tensor in self.tensors.values():
            tensor.mul_(self.samples / total)
        if "scaler_row" in self.tensors:
            self.tensors["scaler_row"].add_(x.pow(2).sum(0) / total)
        if "hessian" in self.tensors:
            scaled = math.sqrt(2 / total) * x
            self.tensors["hessian"].addmm_(scaled.T, scaled)
        self.samples = total


class _StopForward(Exception):
    """Raised by the capture hook once layer 0 has seen its inputs."""


def check_kinds(kinds: tuple[str, ...]) -> None:
    unknown = set(kinds) - set(STATISTICS)
    if not kinds or unknown:
        raise PrunesweepError(f"calibration statistics {sorted(unknown) or '()'} are not among {STATISTICS}")


def check_calibration_ids(ids: torch.Tensor | None) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long or ids.numel() == 0:
        raise PrunesweepError("calibration ids must be a non-empty LongTensor (n_samples, seq_len)")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def capture_layer_inputs(
    model: PreTrainedModel, calibration_ids: torch.Tensor, batch_size: int = 8, grad: bool = False
) -> list[LayerInput]:
    """The inputs of the first decoder layer for `calibration_ids`, in batches of `batch_size` sequences
    (`grad`: with the autograd graph back to the weights before the layers that require a gradient)."""
    check_calibration_ids(calibration_ids)
    first = require_architecture(model).layers(model)[0]
    offloader = offloader_of(model)
    captured: list[LayerInput] = []

    def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden, rest = (args[0], args[1:]) if args else (kwargs.pop("hidden_states"), ())
        captured.append(LayerInput(hidden, rest, kwargs))
        raise _StopForward

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.set_grad_enabled(grad), eval_mode(model), offloader.embedding(model):
            for batch in calibration_ids.split(batch_size):
                batch = batch.to(offloader.device)
                with suppress(_StopForward):  # calibration windows are unpadded: an all-ones mask
                    model(input_ids=batch, attention_mask=torch.ones_like(batch), use_cache=False)
    finally:
        handle.remove()
    return captured


@torch.no_grad()
def advance(layer: nn.Module, inputs: list[LayerInput]) -> list[LayerInput]:
    """Run `layer` on every batch: its outputs, as the next layer's inputs."""
    outputs = []
    for batch in inputs:
        out = layer(batch.hidden, *batch.args, **batch.kwargs)
        outputs.append(replace(batch, hidden=out[0] if isinstance(out, tuple) else out))
    return outputs


@contextmanager
def recording(linears: dict[str, nn.Module], kinds: tuple[str, ...]) -> Iterator[dict[str, InputStatistics]]:
    """Collect input statistics of `linears` over every forward run inside the block."""
    stats = {name: InputStatistics(out_in_weight(m).shape[1], kinds, m.weight.device) for name, m in linears.items()}
    handles = [
        module.register_forward_hook(lambda _m, args, _out, s=stats[name]: s.add_batch(args[0]))
        for name, module in linears.items()
    ]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()


def sequential_calibration(
    model: PreTrainedModel,
    calibration_ids: torch.Tensor,
    kinds: tuple[str, ...],
    prune_layer: PruneLayer,
    batch_size: int = 8,
) -> None:
    """Paper-faithful layer-wise pruning: for each layer, collect the statistics of its linears on the current
    inputs, call `prune_layer(index, layer, stats)`, and feed the *pruned* layer's outputs to the next layer.
    Only one layer's statistics (and, under `model.offload`, one layer's weights on the compute device) are alive
    at a time."""
    check_kinds(kinds)
    arch = require_architecture(model)
    offloader = offloader_of(model)
    inputs = capture_layer_inputs(model, calibration_ids, batch_size)
    with eval_mode(model):
        for index, layer in enumerate(bar(arch.layers(model), desc="calibrate + prune layers", unit="layer")):
            with offloader.onloaded(layer, index, changed=True):
                with recording(arch.linears(layer), kinds) as stats:
                    advance(layer, inputs)
                prune_layer(index, layer, {name: s.tensors for name, s in stats.items()})
                del stats
                inputs = advance(layer, inputs)


def forward_layerwise(
    model: PreTrainedModel,
    calibration_ids: torch.Tensor,
    batch_size: int = 8,
    desc: str = "calibration forward",
    watch: Callable[[int, nn.Module], AbstractContextManager[object]] | None = None,
) -> None:
    """Run the unchanged model on `calibration_ids` one decoder layer at a time, each on the compute device for
    its turn (under `model.offload`, the only one there). Forward hooks on the layers and their modules see what
    a whole-model forward shows them, bit for bit; the final norm and the head do not run. `watch(index, layer)`:
    a block around that layer's turn."""
    arch = require_architecture(model)
    offloader = offloader_of(model)
    inputs = capture_layer_inputs(model, calibration_ids, batch_size)
    with eval_mode(model):
        for index, layer in enumerate(bar(arch.layers(model), desc=desc, unit="layer")):
            with offloader.onloaded(layer, index, changed=False), watch(index, layer) if watch else nullcontext():
                inputs = advance(layer, inputs)


def dense_statistics(
    model: PreTrainedModel, calibration_ids: torch.Tensor, kinds: tuple[str, ...], batch_size: int = 8
) -> dict[str, torch.Tensor]:
    """Every statistic of the dense model in one pass, flat `{"<layer>.<linear>.<stat>": tensor}` (storable as
    safetensors, reusable by every rate and pattern of a sweep)."""
    check_kinds(kinds)
    arch = require_architecture(model)
    flat: dict[str, torch.Tensor] = {}

    @contextmanager
    def collect(index: int, layer: nn.Module) -> Iterator[None]:
        with recording(arch.linears(layer), kinds) as stats:
            yield
        for name, linear_stats in stats.items():
            flat.update({f"{index}.{name}.{kind}": t for kind, t in linear_stats.tensors.items()})

    forward_layerwise(model, calibration_ids, batch_size, "calibration statistics", collect)
    return flat


def layer_statistics(
    flat: dict[str, torch.Tensor], index: int, linears: dict[str, nn.Module], kinds: tuple[str, ...]
) -> LayerStatistics:
    """The statistics of layer `index` out of a flat `dense_statistics` dict, checked against the linears."""
    layer: LayerStatistics = {}
    for name, module in linears.items():
        in_features = out_in_weight(module).shape[1]
        layer[name] = {}
        for kind in kinds:
            key = f"{index}.{name}.{kind}"
            tensor = flat.get(key)
            shape = (in_features,) if kind == "scaler_row" else (in_features, in_features)
            if tensor is None or tuple(tensor.shape) != shape:
                found = "missing" if tensor is None else f"shape {tuple(tensor.shape)}"
                raise PrunesweepError(f"calibration statistics {key!r}: {found}, expected shape {shape}")
            layer[name][kind] = tensor
    return layer
