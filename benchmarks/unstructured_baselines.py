"""Wanda and SparseGPT (unstructured 0.5 and 2:4) on SmolLM2-135M: pruning wall time, peak RSS, and WikiText-2
token perplexity next to the dense model and magnitude pruning of the same linears.

Calibration: C4 windows (as both papers), sequential mode (each layer calibrated on its pruned predecessors).
Peak RSS is the process maximum (`resource.getrusage`) before and after pruning; every case but the last
prunes a deep copy of the dense model, so for the pruning step's own peak run one case alone with a cached
model (`--cases sparsegpt:unstructured --skip-ppl`).

Usage: .venv/bin/python benchmarks/unstructured_baselines.py [--samples 32] [--seq-len 128] [--ppl-tokens 16384]
       [--cases dense:unstructured sparsegpt:2:4 ...] [--skip-ppl]
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from pathlib import Path

import torch
from llm_pruner_vs_torch_pruning import DATA_DIR, ROOT, fresh_model  # sibling script (run as a script)

from prunesweep.atomic import write_json
from prunesweep.data.corpora import calibration_batch, evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning.masks import sparsity_of
from prunesweep.pruning.nm import magnitude_nm_, parse_pattern
from prunesweep.pruning.sparsegpt import prune_sparsegpt
from prunesweep.pruning.wanda import prune_wanda, row_prune_mask

CASES = [  # method:pattern, `--rate` for unstructured
    "dense:unstructured",
    "sparsegpt:unstructured",
    "wanda:unstructured",
    "magnitude:unstructured",
    "sparsegpt:2:4",
    "wanda:2:4",
    "magnitude:2:4",
]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.no_grad()
def magnitude(model: torch.nn.Module, rate: float, pattern: str) -> float:
    """Magnitude of the same linears Wanda/SparseGPT prune: per output row (unstructured, as Wanda's baseline)
    or per N:M group."""
    arch, nm = require_architecture(model), parse_pattern(pattern)
    modules = [m for layer in arch.layers(model) for m in arch.linears(layer).values()]
    for module in modules:
        weight = out_in_weight(module)
        if nm is None:
            weight.masked_fill_(row_prune_mask(weight.abs(), rate), 0)
        else:
            magnitude_nm_(weight, nm.n, nm.m)
    return sparsity_of(modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--ppl-tokens", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="+", default=CASES, help="method:pattern, in order")
    parser.add_argument("--skip-ppl", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmarks" / "unstructured_baselines.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = fresh_model()
    dense = loaded.model
    calib, _ = calibration_batch(loaded.tokenizer, "c4", DATA_DIR, args.samples, args.seq_len, seed=0)
    text, _ = evaluation_text("wikitext2", DATA_DIR)
    rows = []
    for number, case in enumerate(args.cases, start=1):
        method, pattern = case.split(":", 1)
        last = number == len(args.cases)
        model = dense if method == "dense" or last else copy.deepcopy(dense)
        rate = args.rate if pattern == "unstructured" else None
        rss_before, start = peak_rss_mib(), time.perf_counter()
        if method == "dense":
            achieved = 0.0
        elif method == "magnitude":
            achieved = magnitude(model, args.rate, pattern)
        else:
            prune = prune_sparsegpt if method == "sparsegpt" else prune_wanda
            achieved = prune(model, calib, rate, pattern, mode="sequential").achieved
        seconds = time.perf_counter() - start
        rss_after = peak_rss_mib()
        ppl = None if args.skip_ppl else perplexity(model, loaded.tokenizer, text, args.seq_len, args.ppl_tokens)
        row = {
            "method": method,
            "pattern": pattern,
            "achieved": round(achieved, 4),
            "prune_s": round(seconds, 1),
            "peak_rss_mib_before": round(rss_before),
            "peak_rss_mib_after": round(rss_after),
            "wikitext2_ppl": ppl and round(ppl, 2),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    write_json(args.out, {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})


if __name__ == "__main__":
    main()
