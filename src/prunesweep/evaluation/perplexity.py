"""Token perplexity as the pruning papers compute it (LLM-Pruner's PPLMetric, SparseGPT/Wanda eval).

Written by hand because lm-eval's `wikitext` task reports document-level *word* perplexity, which is not
comparable: here the split is concatenated, cut into non-overlapping `seq_len` windows, and
PPL = exp(mean token NLL over all predicted tokens)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.console import bar


def token_windows(ids: torch.Tensor, seq_len: int, max_tokens: int | None = None) -> torch.Tensor:
    """Non-overlapping full windows (n_windows, seq_len); the ragged tail is dropped (as the papers do)."""
    if max_tokens is not None:
        ids = ids[:max_tokens]
    n_windows = ids.numel() // seq_len
    if n_windows == 0:
        raise ValueError(f"text has {ids.numel()} tokens, fewer than seq_len={seq_len}")
    return ids[: n_windows * seq_len].view(n_windows, seq_len)


@torch.no_grad()
def perplexity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    seq_len: int = 128,
    max_tokens: int | None = None,
    batch_size: int = 8,
) -> float:
    """exp(mean NLL) of every token after the first in each window."""
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids[0]
    windows = token_windows(ids, seq_len, max_tokens)
    device = next(model.parameters()).device
    nll_sum, count = 0.0, 0
    model.eval()
    for batch in bar(windows.split(batch_size), desc=f"ppl@{seq_len}", leave=False):
        batch = batch.to(device)
        logits = model(input_ids=batch, use_cache=False).logits.float()
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum")
        nll_sum += loss.item()
        count += batch[:, 1:].numel()
    return math.exp(nll_sum / count)
