"""ShortGPT block influence + layer drop, and OWL layer sparsities, on SmolLM2-135M (dense statistics, C4).

Block influence of the 30 layers and the layers dropped at 1/8 and 1/4 of the depth (ranked once on the dense
model, as ShortGPT does), WikiText-2 token PPL (128-token windows, first `--ppl-tokens` tokens of the test split)
dense and after each drop, and the OWL outlier ratios and layer sparsities at `--owl-rate`. Writes JSON and
prints the figures.

    .venv/bin/python benchmarks/depth_and_owl.py [--samples 64] [--seq-len 128] [--threads 1]
    .venv/bin/python benchmarks/depth_and_owl.py --smoke       # tiny random model, seconds
"""

from __future__ import annotations

import argparse
import time

from common import data_dir, load, parse, report

from prunesweep.data.corpora import calibration_batch, evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.pruning.layer_drop import block_influence, drop_layers, layers_to_drop, lowest_influence
from prunesweep.pruning.owl import DEFAULT_LAMBDA, DEFAULT_M, activation_norms, outlier_ratios, owl_layer_rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64, help="C4 calibration windows")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--drop-rates", type=float, nargs="+", default=[1 / 8, 1 / 4])
    parser.add_argument("--owl-rate", type=float, default=0.7)
    parser.add_argument("--ppl-tokens", type=int, default=16384)
    args = parse(parser, "depth_and_owl", argv, samples=2, seq_len=32, ppl_tokens=512, drop_rates=[0.25, 0.5])

    loaded = load(args.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    calib, _ = calibration_batch(tokenizer, "c4", data_dir(), args.samples, args.seq_len, seed=0)
    wiki, _ = evaluation_text("wikitext2", data_dir())

    def ppl(m) -> float:
        return perplexity(m, tokenizer, wiki, seq_len=128, max_tokens=args.ppl_tokens)

    start = time.perf_counter()
    scores = block_influence(model, calib)
    bi_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ratios = outlier_ratios(model, activation_norms(model, calib), DEFAULT_M)
    owl_seconds = time.perf_counter() - start
    owl = owl_layer_rates(ratios, args.owl_rate, DEFAULT_LAMBDA)
    result = {
        "calibration": {"corpus": "c4", "samples": args.samples, "seq_len": args.seq_len, "seed": 0},
        "block_influence": scores.tolist(),
        "block_influence_seconds": bi_seconds,
        "owl": {"m": DEFAULT_M, "lambda": DEFAULT_LAMBDA, "rate": args.owl_rate, "seconds": owl_seconds},
        "owl_outlier_ratios": ratios.tolist(),
        "owl_layer_rates": owl,
        "ppl": {"seq_len": 128, "max_tokens": args.ppl_tokens, "dense": ppl(model)},
        "dropped": {},
    }
    n_layers = len(scores)
    for rate in args.drop_rates:
        removed = lowest_influence(scores, layers_to_drop(n_layers, rate))
        pruned = load(args.model).model
        drop_layers(pruned, removed)
        result["dropped"][f"{rate:.4g}"] = {"layers": removed, "ppl": ppl(pruned)}
        del pruned

    report(args, result)
    print("block influence:", " ".join(f"{i}:{s:.4f}" for i, s in enumerate(result["block_influence"])))
    print(f"OWL outlier ratios (M={DEFAULT_M}):", " ".join(f"{r:.5f}" for r in result["owl_outlier_ratios"]))
    print(f"OWL layer rates at {args.owl_rate} (lambda={DEFAULT_LAMBDA}):", " ".join(f"{r:.4f}" for r in owl))
    print(f"WikiText-2 PPL dense: {result['ppl']['dense']:.3f}")
    for rate, row in result["dropped"].items():
        print(f"drop {rate}: layers {row['layers']} -> PPL {row['ppl']:.3f}")


if __name__ == "__main__":
    main()
