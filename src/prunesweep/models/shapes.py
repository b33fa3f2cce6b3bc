"""Checkpoints of structurally pruned models that no HF config can describe (non-uniform layers).

Folder layout: `model.safetensors` (the state dict, tied tensors once) and `prunesweep_structure.json`:
the base config (the last shape a config could describe, a superset of this model), the architecture and
the exact per-layer shapes. Loading builds the base model from the config, cuts it down to the recorded
shapes with the same surgery the pruner uses, then loads the tensors (safetensors only, never pickles)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from accelerate import init_empty_weights
from pydantic import Field, PositiveInt, StringConstraints, ValidationError, field_validator, model_validator
from safetensors.torch import load_file, save_file
from transformers import CONFIG_MAPPING, AutoConfig, AutoModelForCausalLM, PreTrainedModel

from prunesweep.data.records import Record, first_error
from prunesweep.models.architecture import ARCHITECTURES, Architecture, require_architecture, resize_to
from prunesweep.models.groups import Structure
from prunesweep.models.safetensors_header import check_safetensors
from prunesweep.util.atomic import write_json
from prunesweep.util.errors import PrunesweepError

MANIFEST = "prunesweep_structure.json"
WEIGHTS = "model.safetensors"
FORMAT = "prunesweep.structural/1"


class LayerShapeEntry(Record):
    num_heads: PositiveInt
    num_kv_heads: PositiveInt
    head_dim: PositiveInt
    intermediate_size: PositiveInt

    @model_validator(mode="after")
    def _heads_share_kv_heads(self) -> LayerShapeEntry:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        return self


class StructureEntry(Record):
    hidden_size: PositiveInt
    layers: Annotated[list[LayerShapeEntry], Field(min_length=1)]


class ShapeManifest(Record):
    """What `save_structural` writes; the weights file is a plain name inside the checkpoint folder."""

    format: Literal[FORMAT]
    architecture: Literal[tuple(arch.name for arch in ARCHITECTURES)]
    config: dict[str, Any]
    structure: StructureEntry
    weights: Annotated[str, StringConstraints(pattern=r"^[^/\\]+\.safetensors$")]

    @field_validator("config")
    @classmethod
    def _known_model_type(cls, config: dict[str, Any]) -> dict[str, Any]:
        if config.get("model_type") not in CONFIG_MAPPING:
            raise ValueError(f"model_type {config.get('model_type')!r} is missing or not a transformers model type")
        return config


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


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The validated shape manifest of a structural checkpoint; PrunesweepError (one line naming the file and the
    defect) when it is not JSON, a field is missing or out of range, or its weights file leaves the folder."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        ShapeManifest.model_validate(manifest)
    except ValidationError as exc:
        raise PrunesweepError("{}: field {!r}: {}".format(path, *first_error(exc))) from None
    except (OSError, ValueError) as exc:
        raise PrunesweepError(f"{path}: unreadable ({exc})") from None
    weights = (Path(folder) / manifest["weights"]).resolve()
    if not weights.is_relative_to(Path(folder).resolve()):
        raise PrunesweepError(f"{path}: weights {manifest['weights']!r} lead outside the checkpoint folder")
    if not weights.is_file():
        raise PrunesweepError(f"{path}: weights file {manifest['weights']!r} not found")
    return manifest


def load_structural(folder: str | Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Rebuild the exact model saved by `save_structural`.

    Parameters are built on the meta device (buffers such as rotary frequencies stay real), cut to the saved
    shapes, then replaced by the loaded tensors: the dense base model is never materialised. The manifest and
    the weights' header are validated first."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / manifest["weights"]
    header = check_safetensors(weights)
    settings = dict(manifest["config"])
    try:
        config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    except (TypeError, ValueError) as exc:
        raise PrunesweepError(f"{folder / MANIFEST}: config does not build a model config ({exc})") from None
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config)
    arch = require_architecture(model)
    resize_to(model, arch, Structure.from_dict(manifest["structure"]))
    _check_shapes(weights, header, model)
    _, unexpected = model.load_state_dict(load_file(str(weights)), strict=False, assign=True)
    arch.sync(model)  # re-ties the output embedding to the loaded input embedding
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing or unexpected:
        raise PrunesweepError(f"{folder}: weights do not fit the manifest: missing {missing}, extra {unexpected}")
    return model.to(dtype).eval()


def _check_shapes(weights: Path, header: dict, model: PreTrainedModel) -> None:
    """Every stored tensor the model has must have the shape the manifest's structure gives it."""
    expected = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    for name, entry in header.items():
        if name in expected and entry.shape != expected[name]:
            raise PrunesweepError(
                f"model file {weights}: tensor {name!r} has shape {entry.shape}, the manifest needs {expected[name]}"
            )
