"""Efficiency columns of LLM-Pruner's Table 2: parameters, MACs, checkpoint bytes, peak memory, latency.

All on a fixed probe input (batch 1, `tokens` tokens, `use_cache=False`).
- MACs: FlopCounterMode over one forward with eager attention (so the attention matmuls are counted too;
  SDPA's CPU kernel has no flop formula), MACs = FLOPs / 2.
- Peak memory: in a fresh process, the peak resident set (VmHWM) while one forward runs on the loaded
  checkpoint, minus the resident set before loading: weights + activations + allocator slack, on CPU. The
  high-water mark is reset after loading (`/proc/self/clear_refs`), so loader transients are not counted.
- Latency: median wall time of `runs` forwards after `warmup` ones, in this process (shared CPUs: noisy)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import PreTrainedModel

from prunesweep.models.params import count_params
from prunesweep.store.checkpoint import checkpoint_bytes

PROBE_TOKENS = 64

_PEAK_MEMORY_SCRIPT = """
import json, re, sys
import torch
from prunesweep.store.checkpoint import load_checkpoint

def status(key):
    return 1024 * int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

torch.set_num_threads(int(sys.argv[3]))
before = status("VmRSS")
model, _ = load_checkpoint(sys.argv[1])
open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark to the current RSS
with torch.inference_mode():
    model(input_ids=torch.zeros(1, int(sys.argv[2]), dtype=torch.long), use_cache=False)
print(json.dumps({"peak": status("VmHWM") - before, "resident": status("VmRSS") - before}))
"""


def probe_input(model: PreTrainedModel, tokens: int = PROBE_TOKENS) -> torch.Tensor:
    """A fixed (1, tokens) batch of token ids on the model's device."""
    ids = torch.arange(tokens) % model.config.vocab_size
    return ids[None].to(next(model.parameters()).device)


def count_macs(model: PreTrainedModel, tokens: int = PROBE_TOKENS) -> int:
    """Multiply-accumulates of one forward over `tokens` tokens (linears + attention matmuls)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(input_ids=probe_input(model, tokens), use_cache=False)
    finally:
        model.set_attn_implementation(previous)
    return counter.get_total_flops() // 2


def forward_latency(model: PreTrainedModel, tokens: int = PROBE_TOKENS, runs: int = 10, warmup: int = 2) -> float:
    """Median seconds of one forward over `tokens` tokens."""
    ids = probe_input(model, tokens)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            model(input_ids=ids, use_cache=False)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(folder: str | Path, tokens: int = PROBE_TOKENS) -> dict[str, int]:
    """Peak and resident bytes added by loading the checkpoint and running one forward (fresh process, with
    this process's torch thread count)."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY_SCRIPT, str(folder), str(tokens), str(torch.get_num_threads())],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def efficiency_stats(
    model: PreTrainedModel, folder: str | Path | None = None, tokens: int = PROBE_TOKENS, runs: int = 10
) -> dict[str, float | int]:
    """Table-2 columns for `model` (and its saved checkpoint `folder`, if given: bytes and peak memory)."""
    total, nonzero = count_params(model)
    stats: dict[str, float | int] = {
        "params": total,
        "nonzero_params": nonzero,
        "macs": count_macs(model, tokens),
        "latency_s": forward_latency(model, tokens, runs),
        "probe_tokens": tokens,
    }
    if folder is not None:
        memory = peak_memory(folder, tokens)
        stats.update(
            checkpoint_bytes=checkpoint_bytes(folder),
            peak_memory_bytes=memory["peak"],
            resident_bytes=memory["resident"],
        )
    return stats
