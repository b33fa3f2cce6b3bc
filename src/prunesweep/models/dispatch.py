"""Whole-model forwards of an offloaded model (evaluation) on its compute device, through accelerate's hooks.

Inside `on_compute_device`, accelerate's `cpu_offload` hooks take each module's weights from where they wait
(host memory, or the memory-mapped files of `offload=disk`) onto the compute device for that module's forward
and drop the copy after it, so the device holds about one module's weights at a time. With
`model.max_device_memory`, the modules that fit in it (accelerate's `infer_auto_device_map`) are copied onto the
device once for the whole block and only the rest stream. Outside it the model is as it was: the hooks are removed
and every weight and buffer put back as the very tensor it was before."""

from __future__ import annotations

import logging
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from accelerate import cpu_offload, infer_auto_device_map
from accelerate.hooks import remove_hook_from_submodules
from accelerate.utils import compute_module_sizes
from torch import nn

from prunesweep.models.architecture import require_architecture
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
    placement = device_placement(model, offloader.resident_bytes)
    kept = {id(t): t for name, stays in placement.items() if stays for t in _module_tensors(model, name)}
    with offloader.on_device(list(kept.values())):
        if not kept:
            cpu_offload(model, execution_device=offloader.device)
        for name in (name for name, stays in placement.items() if kept and not stays):
            cpu_offload(model.get_submodule(name), execution_device=offloader.device)
        _DISPATCHED[model] = offloader.device
        try:
            yield
        finally:
            del _DISPATCHED[model]
            remove_hook_from_submodules(model)
            # Put back by hand: accelerate's removal wraps each weight in a new Parameter
            # (`set_module_tensor_to_device`), which unties tied weights (a head sharing the embedding becomes a
            # second parameter) and would leave buffers on the compute device.
            for tensors, name, tensor in home:
                tensors[name] = tensor


def device_placement(model: nn.Module, budget: int | None) -> dict[str, bool]:
    """Module name -> whether it stays on the compute device for a whole evaluation within `budget` bytes (the
    rest streams in per forward), as accelerate's `infer_auto_device_map` places them: in forward order, decoder
    layers whole, tied weights together, room kept for the largest streamed layer. None: everything streams."""
    if budget is None:
        return {"": False}
    layer_class = type(require_architecture(model).layers(model)[0]).__name__
    host = compute_module_sizes(model)[""] + 1
    modeling_log = logging.getLogger("accelerate.utils.modeling")
    level = modeling_log.level
    modeling_log.setLevel(logging.ERROR)  # it warns that "device 0" is absent on a CPU-only machine
    try:
        with warnings.catch_warnings():  # a budget below one layer streams everything, buffers on the device
            warnings.filterwarnings("ignore", message="Current model requires")
            placed = infer_auto_device_map(
                model, max_memory={0: budget, "cpu": host}, no_split_module_classes=[layer_class]
            )
    finally:
        modeling_log.setLevel(level)
    return {name: device == 0 for name, device in placed.items()}


def _module_tensors(model: nn.Module, name: str) -> list[torch.Tensor]:
    module = model.get_submodule(name)
    return [*module.parameters(), *module.buffers()]


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
