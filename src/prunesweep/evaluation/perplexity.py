"""Token perplexity as the pruning papers compute it (LLM-Pruner's PPLMetric, SparseGPT/Wanda eval).

Written by hand because lm-eval's `wikitext` task reports document-level *word* perplexity, which is not
comparable: here the split is concatenated, cut into non-overlapping `seq_len` windows, and
PPL = exp(mean token NLL over all predicted tokens)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunesweep.models.dispatch import input_device
from prunesweep.util.console import bar

# Tokens past the cap that a prefix must still yield, so the cut (at a line end) cannot change the kept tokens.
CUT_MARGIN_TOKENS = 64


def leading_tokens(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int | None) -> torch.Tensor:
    """The first `max_tokens` token ids of `text` (all of them for None), tokenizing only as much of the text as
    that needs: prefixes cut at a line end, doubled until they yield `CUT_MARGIN_TOKENS` more than the cap."""
    chars = 16 * (max_tokens + CUT_MARGIN_TOKENS) if max_tokens is not None else len(text)
    while True:
        cut = len(text) if chars >= len(text) else text.rfind("\n", 0, chars) + 1 or chars
        ids = tokenizer(text[:cut], return_tensors="pt", add_special_tokens=False).input_ids[0]
        if cut == len(text) or ids.numel() >= max_tokens + CUT_MARGIN_TOKENS:
            return ids if max_tokens is None else ids[:max_tokens]
        chars *= 2


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
    windows = token_windows(leading_tokens(tokenizer, text, max_tokens), seq_len)
    device = input_device(model)
    nll_sum, count = 0.0, 0
    model.eval()
    for batch in bar(windows.split(batch_size), desc=f"ppl@{seq_len}", leave=False):
        batch = batch.to(device)
        logits = model(input_ids=batch, use_cache=False).logits
        for window_logits, window in zip(logits, batch, strict=True):  # one window at a time: no batch-sized copies
            nll_sum += F.cross_entropy(window_logits[:-1].float(), window[1:], reduction="sum").item()
        count += batch[:, 1:].numel()
    return math.exp(nll_sum / count)
