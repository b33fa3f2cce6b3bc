"""Calibration gradients for LLM-Pruner's importance, one decoder layer at a time.

The model runs forward layer by layer and keeps each layer's input; the head (final norm, output embedding, LM
loss) gives the gradient at the last hidden states; then, from the last layer down, each layer reruns its
forward on its kept input and backpropagates its output gradient to its weights and its input. This is
activation checkpointing at layer granularity, written here because the whole-model backward (and
`torch.utils.checkpoint`) needs every layer on the compute device at once: here only the layer at work is there
(under `model.offload`), in float32 while it works, with only its own autograd graph alive. The gradients are
those of one backward through the whole model, bit for bit on the CPU (tested). Weights outside the layers
(embeddings, final norm, head: the channel mode's hidden group) take theirs from the head's graph and from a
second capture of the first layer's inputs, run with its graph at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from prunesweep.models.architecture import require_architecture
from prunesweep.models.offload import offloader_of, outside_layers
from prunesweep.pruning.calibration import LayerInput, advance, capture_layer_inputs, eval_mode
from prunesweep.util.console import bar

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PreTrainedModel


@dataclass
class Gradients:
    """Calibration gradients (mean over samples) and, for second order, the Fisher diagonal, by id(parameter)."""

    grad: dict[int, torch.Tensor]
    fisher: dict[int, torch.Tensor] | None = None


class _Accumulator:
    """grad = sum of w_c g_c and F = mean of g_c^2 over the chunks c, from each chunk's whole gradient g_c."""

    def __init__(self, params: Sequence[nn.Parameter], chunks: int, second_order: bool) -> None:
        self.chunks, self.weight = chunks, 1 / chunks
        self.grad = {id(p): torch.zeros_like(p, dtype=torch.float32) for p in params}
        self.fisher = {key: torch.zeros_like(g) for key, g in self.grad.items()} if second_order else None

    def add(self, param: nn.Parameter, chunk_gradient: torch.Tensor | None) -> None:
        if chunk_gradient is None:  # the parameter took no part in this chunk's loss
            return
        g = chunk_gradient.float()
        self.grad[id(param)] += self.weight * g
        if self.fisher is not None:
            self.fisher[id(param)] += g.square() / self.chunks

    def take(self, params: Sequence[nn.Parameter]) -> Gradients:
        """The final gradients of `params`, no longer held here."""
        keys = [id(p) for p in params]
        fisher = None if self.fisher is None else {k: self.fisher.pop(k) for k in keys}
        return Gradients({k: self.grad.pop(k) for k in keys}, fisher)

    def result(self) -> Gradients:
        return Gradients(self.grad, self.fisher)


@contextmanager
def _float32(tensors: Iterable[torch.Tensor]) -> Iterator[None]:
    """The floating tensors in float32 inside the block (a copy unless they already are), then as they were."""
    tensors = [t for t in tensors if t.is_floating_point()]
    home = [t.data for t in tensors]
    for t in tensors:
        t.data = t.data.float()
    try:
        yield
    finally:
        for t, data in zip(tensors, home, strict=True):
            t.data = data


@contextmanager
def _requiring_grad(model: nn.Module, params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Only `params` require a gradient inside the block (the rest is not differentiated)."""
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def _grads(outputs: torch.Tensor, inputs: list[torch.Tensor], grad_outputs: torch.Tensor | None = None) -> list:
    return list(torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs, allow_unused=True))


def calibration_gradients(
    model: PreTrainedModel,
    batch: torch.Tensor,
    params: Sequence[nn.Parameter],
    second_order: bool,
    complete: Callable[[list[nn.Parameter], Gradients], None] | None = None,
) -> Gradients:
    """Gradients of the LM loss (labels = inputs) on `batch`; with `second_order`, one chunk per sample and
    F = mean(g_i^2) as the official code's `acc_grad` (the mean of the per-sample gradients is then the batch
    gradient, since every sample has the same length). Without it, one chunk: the whole batch.

    `complete(params, gradients)` is handed each layer's gradients (and the head's, the embedding's) as soon as
    they are final and they are dropped here, so a caller that reduces them to scores holds one layer's at a
    time; the gradients returned are those not handed over."""
    arch = require_architecture(model)
    offloader, layers = offloader_of(model), arch.layers(model)
    size = 1 if second_order else len(batch)
    labels = list(batch.split(size))
    total = _Accumulator(params, len(labels), second_order)
    wanted = {id(p) for p in params}
    per_layer = [[p for p in layer.parameters() if id(p) in wanted] for layer in layers]
    outside = [t for t in outside_layers(model) if id(t) in wanted]
    head_modules = (arch.final_norm(model), model.get_output_embeddings())
    head_params = [p for m in head_modules for p in m.parameters() if id(p) in wanted]
    head_ids, tied_input = {id(p) for p in head_params}, id(model.get_input_embeddings().weight)
    embedding_params = [p for p in outside if id(p) not in head_ids or id(p) == tied_input]
    embedding_ids = {id(p) for p in embedding_params}
    lowest = 0 if embedding_params else min((i for i, mine in enumerate(per_layer) if mine), default=len(layers))
    # keep activations off the compute device while other layers work there
    home = torch.device("cpu") if offloader.mode != "none" else offloader.device

    with eval_mode(model), _requiring_grad(model, params):
        with _float32(outside_layers(model)):
            inputs = capture_layer_inputs(model, batch, size)
        kept: list[list[LayerInput]] = []
        for index, layer in enumerate(bar(layers, desc="importance forward", unit="layer")):
            if index >= lowest:
                kept.append([replace(x, hidden=x.hidden.to(home)) for x in inputs])
            with offloader.onloaded(layer, index, changed=False), _float32([*layer.parameters(), *layer.buffers()]):
                inputs = advance(layer, inputs)

        upstream, pending = [], []  # gradient at each chunk's last hidden states; the head's part of tied weights
        with offloader.embedding(model), _float32(outside_layers(model)):
            norm, head = head_modules
            for x, ids in zip(inputs, labels, strict=True):
                hidden = x.hidden.detach().requires_grad_()
                loss = model.loss_function(head(norm(hidden)), ids.to(hidden.device), model.config.vocab_size)
                grad_hidden, *grads = _grads(loss, [hidden, *head_params])
                upstream.append(grad_hidden.to(home))
                pending.append({id(p): g for p, g in zip(head_params, grads, strict=True) if id(p) in embedding_ids})
                for p, g in zip(head_params, grads, strict=True):
                    if id(p) not in embedding_ids:
                        total.add(p, g)
        head_only = [p for p in head_params if id(p) not in embedding_ids]
        if complete is not None and head_only:
            complete(head_only, total.take(head_only))

        for index in bar(range(len(layers) - 1, lowest - 1, -1), desc="importance backward", unit="layer"):
            layer, mine, needs_input = layers[index], per_layer[index], index > lowest or bool(embedding_params)
            with offloader.onloaded(layer, index, changed=False), _float32([*layer.parameters(), *layer.buffers()]):
                for chunk, x in enumerate(kept[index - lowest]):
                    hidden = x.hidden.to(offloader.device).requires_grad_(needs_input)
                    out = layer(hidden, *x.args, **x.kwargs)
                    out = out[0] if isinstance(out, tuple) else out
                    grad_out = upstream[chunk].to(out.device)
                    grads = _grads(out, [hidden, *mine] if needs_input else mine, grad_out)
                    upstream[chunk] = grads.pop(0).to(home) if needs_input else None
                    for p, g in zip(mine, grads, strict=True):
                        total.add(p, g)
            kept[index - lowest] = []
            if complete is not None and mine:
                complete(mine, total.take(mine))

        if embedding_params:  # the capture again, with its graph, used while its weights are as it saw them
            with offloader.embedding(model), _float32(outside_layers(model)):
                roots = capture_layer_inputs(model, batch, size, grad=True)
                for chunk, root in enumerate(roots):
                    grads = _grads(root.hidden, embedding_params, upstream[chunk].to(root.hidden.device))
                    for p, g in zip(embedding_params, grads, strict=True):
                        head_part = pending[chunk].get(id(p))
                        total.add(p, g if head_part is None else head_part if g is None else head_part + g)
        if complete is not None and embedding_params:
            complete(embedding_params, total.take(embedding_params))
    return total.result()
