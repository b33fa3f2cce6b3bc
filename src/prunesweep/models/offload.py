"""Where the weights live while the compute device works on one decoder layer at a time (`model.offload`):

- `none`: the whole model on its device (`model.device`).
- `cpu`: the weights in host memory; layer-wise work (calibration statistics, Wanda / SparseGPT / OWL pruning,
  layer_drop's block influence, LLM-Pruner's importance gradients) moves one decoder layer at a time onto the
  compute device and back ("sequential onloading").
- `disk`: the weights memory-mapped from safetensors files in a scratch folder, one file per decoder layer plus
  one for the rest: file pages the kernel reads on demand and may drop again, not anonymous memory. A layer that
  pruning changed is written back to its file and mapped again, so its changed copy does not stay in memory.

Written by hand rather than with accelerate's `cpu_offload` / `disk_offload`: their hooks swap weights in for
each forward and treat them as read-only, while pruning changes a layer's weights and must keep the change.
Evaluation, which changes nothing, uses those hooks (`models.dispatch`); recovery runs on the weights where they
are."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from prunesweep.models.architecture import require_architecture
from prunesweep.util.atomic import atomic_path
from prunesweep.util.memory import return_freed_memory

REST = "rest"  # the file of every weight outside the decoder layers (embeddings, final norm, head)


class Offloader:
    """Moves a module's weights onto the compute device for a block of work and puts them back after it."""

    def __init__(
        self, mode: str, device: torch.device, folder: Path | None = None, resident_bytes: int | None = None
    ) -> None:
        if (mode == "disk") != (folder is not None):
            raise ValueError("offload=disk needs a folder, and only it")
        self.mode, self.device, self.folder = mode, device, folder
        self.resident_bytes = resident_bytes  # device memory evaluation may keep weights in (`models.dispatch`)

    @contextmanager
    def onloaded(self, layer: nn.Module, index: int, changed: bool) -> Iterator[nn.Module]:
        """Decoder layer `index` on the compute device inside the block. After it, its weights are where they were;
        a block that `changed` them puts the new values there: host memory (`cpu`), or the layer's file, written
        back and mapped again (`disk`)."""
        with self._on_device([*layer.parameters(), *layer.buffers()], keep=changed):
            yield layer
            if self.mode == "disk" and changed:
                assert self.folder is not None
                spill(dict(layer.named_parameters()), _layer_file(self.folder, index))
        if self.mode == "disk":
            return_freed_memory()

    def write_back(self, model: nn.Module, index: int | None) -> None:
        """After surgery replaced weights of decoder layer `index` (None: of the weights outside the layers): under
        `disk`, write them to that file and map them from it; the other modes keep them where surgery made them."""
        if self.mode != "disk":
            return
        assert self.folder is not None
        if index is None:
            spill(rest_params(model), self.folder / f"{REST}.safetensors")
        else:
            spill(
                dict(require_architecture(model).layers(model)[index].named_parameters()),
                _layer_file(self.folder, index),
            )
        return_freed_memory()

    @contextmanager
    def embedding(self, model: nn.Module) -> Iterator[None]:
        """Every weight outside the decoder layers on the compute device, unchanged (a forward up to the first
        layer)."""
        with self.on_device(outside_layers(model)):
            yield

    def on_device(self, tensors: list[torch.Tensor]) -> AbstractContextManager[None]:
        """`tensors` on the compute device inside the block, unchanged, and back where they wait after it."""
        return self._on_device(tensors, keep=False)

    @contextmanager
    def _on_device(self, tensors: list[torch.Tensor], keep: bool) -> Iterator[None]:
        """`tensors` (weights, buffers) on the compute device inside the block; then their host tensors back
        (`keep`: their new values, copied to host memory unless already there)."""
        if self.mode == "none":
            yield
            return
        home = [t.data for t in tensors]
        for t in tensors:
            t.data = t.data.to(self.device)
        try:
            yield
        finally:
            for t, data in zip(tensors, home, strict=True):
                t.data = t.data.to(data.device) if keep else data


def outside_layers(model: nn.Module) -> list[torch.Tensor]:
    """Every weight and buffer of `model` outside its decoder layers (embeddings, final norm, head), once each."""
    layers = require_architecture(model).layers(model)
    inside = {id(t) for layer in layers for t in [*layer.parameters(), *layer.buffers()]}
    return [t for t in [*model.parameters(), *model.buffers()] if id(t) not in inside]


_OFFLOADERS: weakref.WeakKeyDictionary[nn.Module, Offloader] = weakref.WeakKeyDictionary()


def offloader_of(model: nn.Module) -> Offloader:
    """The model's offloader; a model loaded without offload gets one that moves nothing."""
    found = _OFFLOADERS.get(model)
    if found is not None:
        return found
    first = next(model.parameters(), None)
    return Offloader("none", first.device if first is not None else torch.device("cpu"))


def offload(
    model: nn.Module, mode: str, device: torch.device, scratch: str | Path, resident_bytes: int | None = None
) -> Offloader:
    """Put `model` under `mode` with its weights in host memory; for `disk`, write them into a fresh folder below
    `scratch` (removed with the model, or at exit) and map them from there. `resident_bytes`: the device memory
    evaluation may keep weights in."""
    folder = None
    model.to("cpu")
    if mode == "disk":
        Path(scratch).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="offload-", dir=scratch))
        weakref.finalize(model, shutil.rmtree, folder, ignore_errors=True)
        for index, layer in enumerate(require_architecture(model).layers(model)):
            spill(dict(layer.named_parameters()), _layer_file(folder, index))
        spill(rest_params(model), folder / f"{REST}.safetensors")
        return_freed_memory()
    offloader = Offloader(mode, device, folder, resident_bytes)
    _OFFLOADERS[model] = offloader
    return offloader


def rest_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters outside the decoder layers by name (a tied head once, under the name it has first)."""
    layers = require_architecture(model).layers(model)
    inside = {id(p) for layer in layers for p in layer.parameters()}
    return {name: p for name, p in model.named_parameters() if id(p) not in inside}


def _layer_file(folder: Path, index: int) -> Path:
    return folder / f"layer_{index}.safetensors"


def spill(params: dict[str, nn.Parameter], path: Path) -> None:
    """Write `params` to the safetensors file `path` (atomically) and point each at its memory-mapped copy there
    (safetensors maps the file copy-on-write: a later in-place change costs memory only for the pages it touches)."""
    with atomic_path(path) as tmp:
        save_file({name: p.detach().cpu().contiguous() for name, p in params.items()}, str(tmp))
    mapped = load_file(path)
    for name, p in params.items():
        p.data = mapped[name]
