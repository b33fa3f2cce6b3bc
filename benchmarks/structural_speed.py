"""Does structural pruning pay? SmolLM2-135M at 50% parameters removed (block mode) vs dense, one run.

Both models are saved as checkpoints (the pruned one as safetensors + shape manifest) and measured on the
same fixed 64-token input: parameters, MACs, checkpoint bytes, peak memory of a fresh process that loads the
checkpoint and runs one forward (see `prunesweep.evaluation.efficiency`), and forward latency, measured in alternating
rounds (dense, pruned, dense, ...) so that load from other processes hits both alike.

Usage: .venv/bin/python benchmarks/structural_speed.py [--rate 0.5] [--tokens 64] [--rounds 5] [--runs 10]
       .venv/bin/python benchmarks/structural_speed.py --smoke      # tiny random model, seconds
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import data_dir, load, make_pruner, parse, report

from prunesweep.data.corpora import calibration_batch
from prunesweep.evaluation.efficiency import count_macs, forward_latency, peak_memory
from prunesweep.models.params import count_params
from prunesweep.pruning.base import PruneContext
from prunesweep.store.checkpoint import checkpoint_bytes, save_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--importance", default="element1")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="forwards per round (median taken)")
    args = parse(parser, "structural_speed", argv, rate=0.3, rounds=1, runs=2, tokens=16)

    dense, pruned = load(args.model), load(args.model)
    calib, _ = calibration_batch(pruned.tokenizer, "c4", data_dir(), 10, 128, seed=0)
    pruner = make_pruner("llm_pruner", importance=args.importance)
    result = pruner.prune_to(pruned.model, args.rate, PruneContext(pruned.tokenizer, lambda: calib))
    models = {"dense": dense, "pruned": pruned}

    rows = {
        name: {"params": count_params(m.model)[0], "macs": count_macs(m.model, args.tokens)}
        for name, m in models.items()
    }
    latencies: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, loaded in models.items():
            latencies[name].append(forward_latency(loaded.model, args.tokens, args.runs))
    with tempfile.TemporaryDirectory() as tmp:
        for name, loaded in models.items():
            folder = save_checkpoint(loaded.model, loaded.tokenizer, Path(tmp) / name)
            memory = peak_memory(folder, args.tokens)
            rows[name].update(
                checkpoint_bytes=checkpoint_bytes(folder),
                peak_memory_bytes=memory["peak"],
                resident_bytes=memory["resident"],
                latency_s=statistics.median(latencies[name]),
            )
    ratios = {key: rows["pruned"][key] / rows["dense"][key] for key in rows["dense"]}
    figures = {"achieved": result.achieved, "details": result.details, "latency_rounds": latencies}
    report(args, {**figures, "dense": rows["dense"], "pruned": rows["pruned"], "pruned_over_dense": ratios})
    print(f"requested {args.rate:.3f}, achieved {result.achieved:.4f} of the parameters removed")
    print("| metric | dense | pruned | pruned/dense |\n|---|---|---|---|")
    for key, ratio in ratios.items():
        print(f"| {key} | {rows['dense'][key]:.4g} | {rows['pruned'][key]:.4g} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
