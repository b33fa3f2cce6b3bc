"""Does LoRA recovery repair a magnitude-pruned model? WikiText-2 / PTB token PPL before and after.

Dense -> magnitude pruning (`conf/pruner/magnitude.yaml`, one-shot) -> LoRA recovery (`conf/recovery/lora.yaml`)
on each requested dataset (each run starts from the same pruned weights). PPL as the papers compute it
(non-overlapping 128-token windows), capped to the first `--ppl-tokens` tokens of each test split to stay cheap on
CPU. Writes JSON and prints a Markdown table.

    .venv/bin/python benchmarks/recovery_effect.py --datasets alpaca c4      # SmolLM2-135M
    .venv/bin/python benchmarks/recovery_effect.py --smoke                   # tiny random model, seconds
"""

from __future__ import annotations

import argparse

from common import compose, data_dir, load, make_pruner, parse, report

from prunesweep.config.schema import PerplexityCorpus
from prunesweep.data.corpora import evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.masks import module_sparsity
from prunesweep.recovery import recover


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--datasets", nargs="+", default=["alpaca"], help="recovery datasets, one run each")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cutoff", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--ppl-tokens", type=int, default=16384, help="cap on tokens per PPL test split")
    args = parse(parser, "recovery_effect", argv, datasets=["c4"], steps=2, batch_size=2, cutoff=64, ppl_tokens=512)

    loaded = load(args.model)
    model, tokenizer, folder = loaded.model, loaded.tokenizer, data_dir()
    texts = {name: evaluation_text(name, folder)[0] for name in map(str, PerplexityCorpus)}

    def ppl() -> dict[str, float]:
        return {name: perplexity(model, tokenizer, text, 128, args.ppl_tokens) for name, text in texts.items()}

    rows = [{"stage": "dense", **ppl()}]
    pruner = make_pruner("magnitude", rate=args.rate)
    pruner.prune_to(model, args.rate, PruneContext(tokenizer, calibration=lambda: None))
    sparsity = module_sparsity(model, list(pruner.cfg.targets))
    rows.append({"stage": f"magnitude {args.rate:g} w/o tune", "sparsity": sparsity, **ppl()})
    pruned_state = {k: v.clone() for k, v in model.state_dict().items()}
    for dataset in args.datasets:
        model.load_state_dict(pruned_state)
        recovery = compose(
            "recovery=lora", f"recovery.dataset={dataset}", f"recovery.max_steps={args.steps}",
            f"recovery.batch_size={args.batch_size}", f"recovery.cutoff_len={args.cutoff}", f"recovery.lr={args.lr}",
            f"recovery.warmup_steps={min(10, args.steps)}", f"recovery.dtype={args.dtype}",
        ).recovery  # fmt: skip
        model, result = recover(model, tokenizer, recovery, folder, pruner.after_update)
        achieved = module_sparsity(model, list(pruner.cfg.targets))
        if achieved != sparsity:
            raise SystemExit(f"LoRA merge changed sparsity: {sparsity} -> {achieved}")
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
    report(
        args,
        {"model": loaded.source, "protocol": {"ppl_seq_len": 128, "ppl_max_tokens": args.ppl_tokens}, "rows": rows},
    )
    print("| stage | sparsity | WikiText-2 PPL | PTB PPL | val loss before -> after | recovery s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        val = f"{row['val_loss_before']:.3f} -> {row['val_loss_after']:.3f}" if row.get("val_loss_after") else ""
        print(
            f"| {row['stage']} | {row.get('sparsity', 0):.4f} | {row['wikitext2']:.2f} | {row['ptb']:.2f} | {val} "
            f"| {row.get('recovery_seconds', '')} |"
        )


if __name__ == "__main__":
    main()
