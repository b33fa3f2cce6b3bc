"""Per-cycle checkpoints: safetensors only (never pickles), written atomically.

A model its config describes (dense, unstructured, or uniformly pruned) is saved as a plain HF folder
(loadable by `lm_eval --model hf`); a structurally pruned model with non-uniform layers as safetensors plus a
shape manifest (`pruning.structural.manifest`) that rebuilds it exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.models.architecture import architecture_of
from prunesweep.models.shapes import is_structural, load_structural, read_manifest, save_structural
from prunesweep.store.provenance import PROVENANCE
from prunesweep.util.atomic import atomic_dir, write_json
from prunesweep.util.errors import PrunesweepError

HF_CONFIG = "config.json"


def save_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | Path,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Save model + tokenizer as safetensors into `folder` (replaced atomically), choosing the format; with
    `provenance` (which run, method and step made it) as `prunesweep_provenance.json` beside them."""
    folder = Path(folder)
    arch = architecture_of(model)
    with atomic_dir(folder) as tmp:
        if arch is None or arch.describable(model):
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            save_structural(model, arch, tmp)
        tokenizer.save_pretrained(tmp)
        if provenance is not None:
            write_json(tmp / PROVENANCE, provenance)
    return folder


def load_checkpoint(
    folder: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a checkpoint written by `save_checkpoint` (safetensors, no remote code)."""
    folder = Path(folder)
    check_checkpoint(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if is_structural(folder):
        model = load_structural(folder, dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    return model.to(device).eval(), tokenizer


def check_checkpoint(folder: Path) -> None:
    """Raise PrunesweepError (one line) unless `folder` holds a checkpoint (an HF config or a shape manifest)."""
    if not (folder / HF_CONFIG).is_file() and not is_structural(folder):
        state = "has neither config.json nor a structural manifest" if folder.is_dir() else "does not exist"
        raise PrunesweepError(f"checkpoint folder {str(folder)!r} {state}")


def saved_dtype(folder: str | Path) -> str | None:
    """The dtype name a checkpoint's config records for its weights (e.g. "float32"), None if it states none."""
    folder = Path(folder)
    check_checkpoint(folder)
    structural = is_structural(folder)
    config = read_manifest(folder)["config"] if structural else json.loads((folder / HF_CONFIG).read_text())
    return config.get("dtype") or config.get("torch_dtype")


def checkpoint_bytes(folder: str | Path) -> int:
    """Bytes of the weight files in a checkpoint folder."""
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
