"""Whole-model forwards of an offloaded model (evaluation) on its compute device, through accelerate's hooks.

Inside `on_compute_device`, accelerate's `cpu_offload` hooks take each module's weights from where they wait
(host memory, or the memory-mapped files of `offload=disk`) onto the compute device for that module's forward
and drop the copy after it, so the device holds about one module's weights at a time. Outside it the model is as
it was: the hooks are removed and every weight and buffer put back as the very tensor it was before."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from accelerate import cpu_offload
from accelerate.hooks import remove_hook_from_submodules
from torch import nn

from prunesweep.models.offload import offloader_of

_DISPATCHED: weakref.WeakKeyDictionary[nn.Module, torch.device] = weakref.WeakKeyDictionary()


@contextmanager
def on_compute_device(model: nn.Module) -> Iterator[None]:
    """Every forward of `model` inside the block runs on its compute device (`model.offload` none: where it is,
    nothing changes). The weights stay where they wait; `input_device` says where its inputs go."""
    offloader = offloader_of(model)
    if offloader.mode == "none":
        yield
        return
    home = _tensors(model)
    cpu_offload(model, execution_device=offloader.device)
    _DISPATCHED[model] = offloader.device
    try:
        yield
    finally:
        del _DISPATCHED[model]
        remove_hook_from_submodules(model)
        # Put back by hand: accelerate's removal wraps each weight in a new Parameter (`set_module_tensor_to_device`),
        # which unties tied weights (a head sharing the embedding becomes a second parameter) and would leave
        # buffers on the compute device.
        for tensors, name, tensor in home:
            tensors[name] = tensor


def input_device(model: nn.Module) -> torch.device:
    """Where a forward of `model` takes its inputs: its compute device inside `on_compute_device`, else where its
    first weight is."""
    found = _DISPATCHED.get(model)
    if found is not None:
        return found
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _tensors(model: nn.Module) -> list[tuple[dict[str, torch.Tensor | None], str, torch.Tensor | None]]:
    """Every module's own weights and buffers, as (the module's dict of them, name, tensor)."""
    return [
        (tensors, name, tensor)
        for module in model.modules()
        for tensors in (module._parameters, module._buffers)
        for name, tensor in tensors.items()
    ]
