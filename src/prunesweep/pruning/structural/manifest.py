"""Checkpoints of structurally pruned models that no HF config can describe (non-uniform layers).

Folder layout: `model.safetensors` (the state dict, tied tensors once) and `prunesweep_structure.json`:
the base config (the last shape a config could describe, a superset of this model), the architecture and
the exact per-layer shapes. Loading builds the base model from the config, cuts it down to the recorded
shapes with the same surgery the pruner uses, then loads the tensors (safetensors only, never pickles)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from prunesweep.atomic import write_json
from prunesweep.errors import PrunesweepError
from prunesweep.models.architecture import Architecture, require_architecture, resize_to
from prunesweep.pruning.structural.groups import Structure

MANIFEST = "prunesweep_structure.json"
WEIGHTS = "model.safetensors"
FORMAT = "prunesweep.structural/1"


def unique_state_dict(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The state dict with each shared tensor (tied embeddings) stored once, under its first name."""
    seen: set[int] = set()
    state = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            state[name] = tensor.detach().contiguous()
    return state


def save_structural(model: PreTrainedModel, arch: Architecture, folder: Path) -> None:
    """Write the weights and the shape manifest of `model` into an existing `folder`."""
    save_file(unique_state_dict(model), str(folder / WEIGHTS), metadata={"format": "pt"})
    manifest = {
        "format": FORMAT,
        "architecture": arch.name,
        "config": model.config.to_dict(),
        "structure": arch.structure(model).to_dict(),
        "weights": WEIGHTS,
    }
    write_json(folder / MANIFEST, manifest)


def is_structural(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def load_structural(folder: str | Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Rebuild the exact model saved by `save_structural`.

    Parameters are built on the meta device (buffers such as rotary frequencies stay real), cut to the saved
    shapes, then replaced by the loaded tensors: the dense base model is never materialised."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise PrunesweepError(f"{folder / MANIFEST}: unknown format {manifest.get('format')!r}, expected {FORMAT}")
    settings = dict(manifest["config"])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config)
    arch = require_architecture(model)
    resize_to(model, arch, Structure.from_dict(manifest["structure"]))
    _, unexpected = model.load_state_dict(load_file(str(folder / manifest["weights"])), strict=False, assign=True)
    arch.sync(model)  # re-ties the output embedding to the loaded input embedding
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing or unexpected:
        raise PrunesweepError(f"{folder}: weights do not fit the manifest: missing {missing}, extra {unexpected}")
    return model.to(dtype).eval()
