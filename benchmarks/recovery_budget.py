"""Recovery at one token budget: CE-LoRA, CE-full, distill-LoRA and distill-full on the same pruned model.

For every `--pruners` entry (`method:rate`), one `prunesweep` run per recovery variant (as a user runs it, one
store for all, so the dense model and the pruned step are computed once): the same data (`--dataset`), the same
budget (`--steps` x `--batch-size` x `--cutoff` tokens) and seed for every variant. Printed as a Markdown table
(WikiText-2 PPL, PIQA / ARC-e accuracy after recovery, training tokens, tokens/s and the recovery stage's peak
resident memory; the dense and un-recovered rows beside them) and written as JSON. Distillation loads the dense
teacher beside the student, which the memory column shows.

    .venv/bin/python benchmarks/recovery_budget.py                               # SmolLM2: wanda 0.5, llm_pruner 0.2
    .venv/bin/python benchmarks/recovery_budget.py --steps 200 --batch-size 8    # 200 x 8 x 128 tokens a variant
    .venv/bin/python benchmarks/recovery_budget.py --smoke                       # tiny random model, seconds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import cli, parse, report

from prunesweep.store.results import RESULTS_FILE, read_results
from prunesweep.util.memory import RSS_FIELD

MIB = 1 << 20
VARIANTS = {  # what trains and on which loss; the learning rates are the recovery presets' (LoRA 1e-4, full 2e-5)
    "CE-LoRA": ["recovery=lora"],
    "CE-full": ["recovery=full"],
    "distill-LoRA": ["recovery=distill", "recovery.params=lora"],
    "distill-full": ["recovery=distill", "recovery.params=full", "recovery.lr=2e-5"],
}
METRICS = (("wikitext2", "ppl"), ("piqa", "acc"), ("arc_easy", "acc"))


def variant_rows(rows: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    """The table rows of one run: its dense and un-recovered stages (`None` variant) and its recovered stage."""
    out = []
    for stage in ("dense", "pruned", "recovered"):
        picked = [row for row in rows if row["stage"] == stage]
        if not picked:
            continue
        values = {f"{task}_{metric}": row["value"] for row in picked for task, metric in METRICS
                  if (row["task"], row["metric"]) == (task, metric)}  # fmt: skip
        first = picked[0]
        entry = {"stage": stage, "variant": variant if stage == "recovered" else None, **values}
        if stage == "recovered":
            entry |= {
                "train_tokens": first["recovery_train_tokens"],
                "tokens_per_second": first["recovery_tokens_per_second"],
                "recovery_seconds": first["recovery_seconds"],
                "recovery_peak_rss_mib": first[f"recovery{RSS_FIELD}"] / MIB,
                "val_loss_before": first["recovery_val_loss_before"],
                "val_loss_after": first["recovery_val_loss_after"],
            }
        out.append(entry)
    return out


def run_pruner(spec: str, args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Every variant on `method:rate`; the dense and un-recovered rows once."""
    method, _, rate = spec.partition(":")
    common = [
        f"model={args.model}", f"pruner={method}", f"pruner.rate={rate}", "benchmark=quick",
        f"benchmark.tasks=[{','.join(task for task, _ in METRICS[1:])}]", f"benchmark.limit={args.limit}",
        f"benchmark.ppl_max_tokens={args.ppl_tokens}", "logger=none", f"threads={args.threads}",
        f"recovery.dataset={args.dataset}", f"recovery.max_steps={args.steps}",
        f"recovery.batch_size={args.batch_size}", f"recovery.cutoff_len={args.cutoff}",
        f"recovery.warmup_steps={max(1, args.steps // 10)}", "experiment_name=recovery_budget",
        f"paths.store_dir={root}/store",
    ]  # fmt: skip
    collected: list[dict[str, Any]] = []
    for variant in args.variants:
        folder = root / "runs" / f"{method}-{rate}-{variant}"
        wall, _, done = cli([*common, *VARIANTS[variant], f"hydra.run.dir={folder}"])
        if done.returncode:
            sys.exit(f"prunesweep ({variant}, {spec}) failed:\n{done.stderr[-3000:]}")
        collected += variant_rows(read_results(folder / RESULTS_FILE), variant)
        print(f"{spec} {variant}: {wall:.0f} s", flush=True)
    once = [next(row for row in collected if row["stage"] == stage) for stage in ("dense", "pruned")]
    return [{"pruner": spec, **row} for row in once + [row for row in collected if row["stage"] == "recovered"]]


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| pruner | stage | recovery | WikiText-2 PPL | PIQA acc | ARC-e acc | tokens | tokens/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{row.get(f'{task}_{metric}', float('nan')):.{2 if metric == 'ppl' else 3}f}" for task, metric in METRICS
        ]
        extra = (
            [f"{row['train_tokens']}", f"{row['tokens_per_second']:.1f}", f"{row['recovery_peak_rss_mib']:.0f}"]
            if row["stage"] == "recovered"
            else ["–", "–", "–"]
        )
        lines.append(
            f"| {row['pruner']} | {row['stage']} | {row['variant'] or '–'} | " + " | ".join(cells + extra) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruners", nargs="+", default=["wanda:0.5", "llm_pruner:0.2"], help="method:rate")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--dataset", default="c4", help="the recovery data of every variant")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cutoff", type=int, default=128, help="tokens a training sequence")
    parser.add_argument("--limit", type=int, default=100, help="PIQA / ARC-e examples")
    parser.add_argument("--ppl-tokens", type=int, default=16384)
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs and their store in this folder")
    args = parse(parser, "recovery_budget", argv, pruners=["wanda:0.5"], variants=["CE-LoRA", "distill-full"],
                 steps=2, batch_size=2, cutoff=32, limit=4, ppl_tokens=512)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="recovery-budget-") as tmp:
        root = args.keep or Path(tmp)
        rows = [row for spec in args.pruners for row in run_pruner(spec, args, root)]
    report(args, {"rows": rows})
    print(markdown(rows))


if __name__ == "__main__":
    main()
