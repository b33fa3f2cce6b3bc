"""lm-eval model type `prunesweep`: any checkpoint the runner writes, structural ones with non-uniform layers too.

`--model prunesweep --model_args pretrained=<checkpoint folder>[,dtype=auto|float32|bfloat16]`: the folder is loaded
through `prunesweep.store.checkpoint.load_checkpoint` (safetensors, no remote code) and handed to lm-eval's `HFLM`, so
every other HFLM argument (max_length, add_bos_token, ...) means what it means for `--model hf`."""

from __future__ import annotations

from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from prunesweep.models.loader import resolve_device, resolve_dtype
from prunesweep.store.checkpoint import load_checkpoint, saved_dtype


@register_model("prunesweep")
class PrunesweepLM(HFLM):
    """HFLM over a prunesweep checkpoint folder. `dtype=auto` (default) keeps the dtype it was saved in; `device`
    (lm-eval's default is cuda:0) falls back to CUDA when present, else the CPU, as HFLM does."""

    def __init__(self, pretrained: str, dtype: str = "auto", device: str | None = None, **kwargs: Any) -> None:
        usable = device and (not device.startswith("cuda") or torch.cuda.is_available())
        torch_device = torch.device(device) if usable else resolve_device("auto")
        name = (saved_dtype(pretrained) or "float32") if dtype == "auto" else dtype
        model, tokenizer = load_checkpoint(pretrained, resolve_dtype(name, torch_device), torch_device)
        super().__init__(pretrained=model, tokenizer=tokenizer, **kwargs)
