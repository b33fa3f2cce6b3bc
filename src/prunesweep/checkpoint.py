"""Per-cycle checkpoints: safetensors only (never pickles), written atomically.

A model its config describes (dense, unstructured, or uniformly pruned) is saved as a plain HF folder
(loadable by `lm_eval --model hf`); a structurally pruned model with non-uniform layers as safetensors plus a
shape manifest (`pruning.structural.manifest`) that rebuilds it exactly."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.atomic import atomic_dir
from prunesweep.models.architecture import architecture_of
from prunesweep.pruning.structural.manifest import is_structural, load_structural, save_structural


def save_checkpoint(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> Path:
    """Save model + tokenizer as safetensors into `folder` (replaced atomically), choosing the format."""
    folder = Path(folder)
    arch = architecture_of(model)
    with atomic_dir(folder) as tmp:
        if arch is None or arch.describable(model):
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            save_structural(model, arch, tmp)
        tokenizer.save_pretrained(tmp)
    return folder


def load_checkpoint(
    folder: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a checkpoint written by `save_checkpoint` (safetensors, no remote code)."""
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if is_structural(folder):
        model = load_structural(folder, dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    return model.to(device).eval(), tokenizer


def checkpoint_bytes(folder: str | Path) -> int:
    """Bytes of the weight files in a checkpoint folder."""
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
