"""Our LLM-Pruner vs torch-pruning's Taylor pruning on SmolLM2-135M (no tuning).

Same calibration batch (C4 sample, 10 x 128 tokens, seed 0), same parameter ratio, same layers [4, 28),
perplexity as the papers compute it (seq_len 128, non-overlapping windows, first `--ppl-tokens` tokens).

Rows
- dense
- ours, block mode (KV groups + MLP channels) for every importance: the paper's table (element1 < random < l2)
- torch-pruning Taylor (element-wise, and `multivariable` = vector), MLP channels only: on this GQA model its
  dependency graph cannot prune attention heads (`shape '[9, -1]' is invalid`)
- ours element1 / vector, MLP channels only, at exactly the parameter ratio torch-pruning reached

Usage: .venv/bin/python benchmarks/llm_pruner_vs_torch_pruning.py [--rate 0.2] [--ppl-tokens 8192] [--out x.json]
       .venv/bin/python benchmarks/llm_pruner_vs_torch_pruning.py --smoke       # tiny random model, seconds
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import torch
import torch_pruning as tp
from common import data_dir, load, make_pruner, parse, report
from torch import nn

from prunesweep.data.corpora import calibration_batch, evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.loader import LoadedModel
from prunesweep.models.params import count_params
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.structural.importance import IMPORTANCES
from prunesweep.pruning.structural.llm_pruner import default_layer_range


def ours(importance: str, rate: float, calib: torch.Tensor, mlp_only: bool = False) -> Callable:
    def prune(loaded: LoadedModel) -> float:
        pruner = make_pruner("llm_pruner", importance=importance, prune_attention=not mlp_only)
        return pruner.prune_to(loaded.model, rate, PruneContext(loaded.tokenizer, lambda: calib)).achieved

    return prune


def torch_pruning_taylor(channel_ratio: float, calib: torch.Tensor, multivariable: bool) -> Callable:
    """torch-pruning's MetaPruner + Taylor importance on the MLP channels of the same layers."""

    def prune(loaded: LoadedModel) -> float:
        model = loaded.model
        dense = count_params(model)[0]
        start, end = default_layer_range(len(model.model.layers))
        mlps = [model.model.layers[i].mlp for i in range(start, end)]
        roots = {id(m.gate_proj) for m in mlps} | {id(m.up_proj) for m in mlps}
        ignored = [m for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in roots]
        pruner = tp.pruner.MetaPruner(
            model,
            example_inputs=calib[:1],
            forward_fn=lambda module, ids: module(input_ids=ids, use_cache=False).logits,
            importance=tp.importance.TaylorImportance(multivariable=multivariable),
            pruning_ratio=channel_ratio,
            ignored_layers=ignored,
        )
        model.zero_grad()
        model(input_ids=calib, labels=calib, use_cache=False).loss.backward()
        pruner.step()
        model.zero_grad(set_to_none=True)
        for mlp in mlps:
            mlp.intermediate_size = mlp.gate_proj.out_features
        return 1 - count_params(model)[0] / dense

    return prune


def evaluate(name: str, prune: Callable | None, texts: dict[str, str], args: argparse.Namespace) -> dict:
    loaded = load(args.model)
    start = time.perf_counter()
    achieved = prune(loaded) if prune is not None else 0.0
    seconds = time.perf_counter() - start
    row = {"method": name, "achieved": achieved, "params": count_params(loaded.model)[0], "prune_seconds": seconds}
    for corpus, text in texts.items():
        row[f"ppl_{corpus}"] = perplexity(loaded.model, loaded.tokenizer, text, 128, max_tokens=args.ppl_tokens)
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.2, help="fraction of the dense parameters removed")
    parser.add_argument("--ppl-tokens", type=int, default=8192, help="evaluate on the first N tokens")
    parser.add_argument("--datasets", default="wikitext2,ptb")
    parser.add_argument("--importances", default=",".join(i for i in IMPORTANCES))
    parser.add_argument("--samples", type=int, default=10, help="C4 calibration windows of 128 tokens")
    args = parse(parser, "llm_pruner_vs_tp", argv, ppl_tokens=512, importances="element1,l2", samples=2)
    warnings.filterwarnings("ignore", message="Unwrapped parameters")  # torch-pruning on the RMSNorm weights

    loaded = load(args.model)
    calib, _ = calibration_batch(loaded.tokenizer, "c4", data_dir(), args.samples, 128, seed=0)
    texts = {name: evaluation_text(name, data_dir())[0] for name in args.datasets.split(",")}
    # MLP-only at the same parameter ratio: channels to remove in each of the block layers
    layers = loaded.model.model.layers
    start, end = default_layer_range(len(layers))
    per_channel = 3 * loaded.model.config.hidden_size
    channel_ratio = (
        args.rate * count_params(loaded.model)[0] / ((end - start) * per_channel * layers[0].mlp.intermediate_size)
    )
    del loaded

    rows = [evaluate("dense", None, texts, args)]
    for importance in args.importances.split(","):
        rows.append(evaluate(f"ours block {importance}", ours(importance, args.rate, calib), texts, args))
    for multivariable, importance in ((False, "element1"), (True, "vector")):
        tp_row = evaluate(
            f"torch-pruning Taylor{' multivariable' if multivariable else ''} mlp",
            torch_pruning_taylor(channel_ratio, calib, multivariable),
            texts,
            args,
        )
        mlp_only = ours(importance, tp_row["achieved"], calib, mlp_only=True)
        rows += [tp_row, evaluate(f"ours mlp {importance}", mlp_only, texts, args)]

    report(args, {"rows": rows})
    columns = ["method", "achieved", "prune_seconds", *(f"ppl_{c}" for c in texts)]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
