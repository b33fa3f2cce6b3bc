"""Wanda, SparseGPT, OWL + Wanda (unstructured and N:M) on SmolLM2-135M: pruning wall time, peak memory, and
WikiText-2 token perplexity next to the dense model and magnitude pruning of the same linears.

Calibration: C4 windows (as the papers), `--mode sequential` (each layer calibrated on its pruned predecessors)
or `dense` (every statistic of the dense model in one pass). OWL's layer rates come from the dense model's
outlier ratios (as the official code and `pruner=owl`). Memory of each pruning step, measured around it alone:
- `prune_peak_rss_mib`: the process's peak RSS during the step minus its RSS before (the kernel's high-water
  mark, reset via /proc/self/clear_refs);
- `stats_peak_mib` / `stats_total_mib`: the most calibration-statistic bytes (Wanda's row norms, SparseGPT's
  Hessians) alive at once vs all ever allocated; sequential mode holds one layer's at a time.

Usage: .venv/bin/python benchmarks/unstructured_baselines.py [--rate 0.5] [--mode sequential] [--samples 32]
       [--seq-len 128] [--ppl-tokens 16384] [--cases dense:unstructured owl:unstructured sparsegpt:2:4 ...]
       [--skip-ppl] [--smoke]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import time
import weakref
from pathlib import Path

import torch
from common import data_dir, load, parse, report

from prunesweep.data.corpora import calibration_batch, evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.architecture import out_in_weight, require_architecture
from prunesweep.pruning import calibration
from prunesweep.pruning.masks import sparsity_of
from prunesweep.pruning.nm import magnitude_nm_, parse_pattern
from prunesweep.pruning.owl import DEFAULT_LAMBDA, DEFAULT_M, activation_norms, outlier_ratios, owl_layer_rates
from prunesweep.pruning.sparsegpt import prune_sparsegpt
from prunesweep.pruning.wanda import prune_wanda, row_prune_mask

CASES = [  # method:pattern, `--rate` for unstructured
    "dense:unstructured",
    "sparsegpt:unstructured",
    "wanda:unstructured",
    "owl:unstructured",
    "magnitude:unstructured",
    "sparsegpt:2:4",
    "wanda:2:4",
    "magnitude:2:4",
]


def _status_mib(field: str) -> float:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024


class StatisticsBytes:
    """Bytes of calibration-statistic tensors alive now, at most and in total (wraps `InputStatistics`)."""

    def __init__(self) -> None:
        self.alive = self.peak = self.total = 0
        original = calibration.InputStatistics.__init__

        def tracked_init(stats: calibration.InputStatistics, *args, **kwargs) -> None:
            original(stats, *args, **kwargs)
            for tensor in stats.tensors.values():
                size = tensor.numel() * tensor.element_size()
                self.alive, self.total = self.alive + size, self.total + size
                self.peak = max(self.peak, self.alive)
                weakref.finalize(tensor, self._freed, size)

        calibration.InputStatistics.__init__ = tracked_init

    def _freed(self, size: int) -> None:
        self.alive -= size

    def reset(self) -> None:
        self.peak = self.alive
        self.total = 0


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--mode", choices=("sequential", "dense"), default="sequential")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--ppl-tokens", type=int, default=16384)
    parser.add_argument("--cases", nargs="+", default=CASES, help="method:pattern, in order")
    parser.add_argument("--skip-ppl", action="store_true")
    args = parse(parser, "unstructured_baselines", argv, samples=2, seq_len=32, ppl_tokens=512)

    loaded = load(args.model)
    dense = loaded.model
    with torch.no_grad():  # fault in the (memory-mapped) weights: a step's peak-RSS rise is then its own memory
        sum(float(p.sum()) for p in dense.parameters())
    calib, _ = calibration_batch(loaded.tokenizer, "c4", data_dir(), args.samples, args.seq_len, seed=0)
    text, _ = evaluation_text("wikitext2", data_dir())
    statistics = StatisticsBytes()
    rows = []
    for number, case in enumerate(args.cases, start=1):
        method, pattern = case.split(":", 1)
        last = number == len(args.cases)
        model = dense if method == "dense" or last else copy.deepcopy(dense)
        rate = args.rate if pattern == "unstructured" else None
        statistics.reset()
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak-RSS high-water mark here
        rss_before, start = _status_mib("VmRSS"), time.perf_counter()
        if method == "dense":
            achieved = 0.0
        elif method == "magnitude":
            achieved = magnitude(model, args.rate, pattern)
        elif method == "owl":
            ratios = outlier_ratios(model, activation_norms(model, calib), DEFAULT_M)
            layer_rates = owl_layer_rates(ratios, args.rate, DEFAULT_LAMBDA)
            achieved = prune_wanda(model, calib, None, pattern, mode=args.mode, layer_rates=layer_rates).achieved
        else:
            prune = prune_sparsegpt if method == "sparsegpt" else prune_wanda
            achieved = prune(model, calib, rate, pattern, mode=args.mode).achieved
        seconds = time.perf_counter() - start
        peak_rise = _status_mib("VmHWM") - rss_before
        ppl = None if args.skip_ppl else perplexity(model, loaded.tokenizer, text, args.seq_len, args.ppl_tokens)
        row = {
            "method": method,
            "pattern": pattern,
            "rate": rate if method != "dense" else 0.0,
            "mode": args.mode,
            "achieved": round(achieved, 4),
            "prune_s": round(seconds, 1),
            "rss_before_mib": round(rss_before),
            "prune_peak_rss_mib": round(peak_rise, 1),
            "stats_peak_mib": round(statistics.peak / 2**20, 2),
            "stats_total_mib": round(statistics.total / 2**20, 2),
            "wikitext2_ppl": ppl and round(ppl, 2),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    report(args, {"rows": rows})


if __name__ == "__main__":
    main()
