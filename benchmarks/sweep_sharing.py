"""Cost of a rate sweep through the shared step store vs independent runs of the same cells, for any method
and calibration mode, plus the WikiText-2 PPL of every cell.

Both use the CLI exactly as a user would. "Independent" gives every cell its own empty store, so nothing is
shared (each evaluates its own dense baseline, computes its own calibration statistics and walks its own
trajectory); "shared" is one `--multirun` sweep over one store (dense evaluated once; an iterative trajectory
fills the lower-rate cells; in `--mode dense` the calibration statistics are computed once for every rate).
Wall time and CPU time (user + sys of the runs) are both reported: CPU time is what a shared machine does not
blur. Each invocation writes `outputs/benchmarks/sweep_sharing/<pruner>-<mode>.json` (or `--out`); every other mode
measured in that folder for the same pruner, rates and protocol is printed beside it with the PPL difference at
each rate. `--smoke`: the tiny random model, seconds.

    .venv/bin/python benchmarks/sweep_sharing.py                     # magnitude, iterative 0.1 -> 0.5
    .venv/bin/python benchmarks/sweep_sharing.py --pruner sparsegpt --schedule oneshot \
        --rates 0.1 0.3 0.5 0.6 0.7 --tasks --ppl-tokens 16384 --mode dense
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import cli, parse, report


def prunesweep(args: list[str]) -> tuple[float, float]:
    """Run the CLI; returns (wall seconds, CPU seconds)."""
    wall, cpu, done = cli(args)
    if done.returncode:
        sys.exit(f"prunesweep {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return wall, cpu


def ppl_by_rate(folder: Path) -> dict[str, float]:
    """WikiText-2 PPL of the final stage of every cell under `folder`, keyed by the cell's target rate."""
    ppl = {}
    for results in folder.rglob("results.jsonl"):
        records = [json.loads(line) for line in results.read_text().splitlines()]
        final = max(r["step"] for r in records)
        for r in records:
            if r["step"] == final and r["task"] == "wikitext2" and r["metric"] == "ppl":
                ppl[f"{r['target_rate']:g}"] = r["value"]
    return dict(sorted(ppl.items(), key=lambda item: float(item[0])))


def overrides(args: argparse.Namespace) -> list[str]:
    common = [
        f"model={args.model}",
        f"pruner={args.pruner}",
        "recovery=none",
        "logger=none",
        "benchmark=quick",
        f"benchmark.tasks=[{','.join(args.tasks)}]",
        f"benchmark.limit={args.limit}",
        f"benchmark.ppl_max_tokens={args.ppl_tokens}",
        f"experiment_name=sweep_sharing_{args.pruner}",
        f"threads={args.threads}",
    ]
    if args.schedule == "explicit":
        common += ["schedule=explicit", f"schedule.milestones=[{','.join(f'{r:g}' for r in args.rates if r > 0)}]"]
    else:
        common.append("schedule=oneshot")
    if args.mode != "none":
        common.append(f"pruner.calibration.mode={args.mode}")
    return common + args.overrides


def measure(args: argparse.Namespace) -> dict:
    common = overrides(args)
    with tempfile.TemporaryDirectory(prefix="sweep-sharing-") as tmp:
        root = Path(tmp)
        independent = []
        for rate in args.rates:
            folder = f"{root}/independent/{rate:g}"
            independent.append(
                prunesweep(
                    [*common, f"pruner.rate={rate:g}", f"paths.store_dir={folder}/store", f"hydra.run.dir={folder}"]
                )
            )
        rates = ",".join(f"{r:g}" for r in args.rates)
        shared_sweep = ["-m", *common, f"pruner.rate={rates}", f"paths.store_dir={root}/store-shared"]
        shared = prunesweep([*shared_sweep, f"hydra.sweep.dir={root}/shared", "hydra.sweep.subdir=${hydra.job.num}"])
        ppl_independent, ppl_shared = ppl_by_rate(root / "independent"), ppl_by_rate(root / "shared")
    return {
        "pruner": args.pruner,
        "mode": args.mode,
        "schedule": args.schedule,
        "rates": args.rates,
        "protocol": {"tasks": args.tasks, "limit": args.limit, "ppl_tokens": args.ppl_tokens, "threads": args.threads},
        "overrides": common,
        "independent_wall_seconds": [round(wall, 1) for wall, _ in independent],
        "independent_total_wall_seconds": round(sum(wall for wall, _ in independent), 1),
        "independent_total_cpu_seconds": round(sum(cpu for _, cpu in independent), 1),
        "shared_sweep_wall_seconds": round(shared[0], 1),
        "shared_sweep_cpu_seconds": round(shared[1], 1),
        "wall_ratio_independent_over_shared": round(sum(wall for wall, _ in independent) / shared[0], 2),
        "cpu_ratio_independent_over_shared": round(sum(cpu for _, cpu in independent) / shared[1], 2),
        "wikitext2_ppl_shared": ppl_shared,
        "wikitext2_ppl_independent": ppl_independent,
        "shared_equals_independent": ppl_shared == ppl_independent,
    }


def mode_comparison(figures: dict, out_dir: Path) -> dict[str, dict[str, float]]:
    """PPL per rate of every mode measured in `out_dir` for the same pruner, rates and protocol."""
    same = {}
    for path in sorted(out_dir.glob(f"{figures['pruner']}-*.json")):
        other = json.loads(path.read_text())
        if (other["rates"], other["protocol"], other["schedule"]) == (
            figures["rates"], figures["protocol"], figures["schedule"]
        ):  # fmt: skip
            same[other["mode"]] = other["wikitext2_ppl_shared"]
    return same


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruner", default="magnitude")
    parser.add_argument("--schedule", choices=("explicit", "oneshot"), default="explicit", help="explicit: iterative")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--mode", choices=("none", "sequential", "dense"), default="none", help="calibration mode")
    parser.add_argument("--tasks", nargs="*", default=["piqa"])
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--ppl-tokens", type=int, default=8192)
    parser.add_argument("overrides", nargs="*", help="extra prunesweep overrides")
    args = parse(parser, "sweep_sharing/{pruner}-{mode}", argv, rates=[0.5], limit=4, ppl_tokens=512)
    figures = measure(args)
    report(args, figures)
    print(json.dumps(figures, indent=2))
    modes = mode_comparison(figures, args.out.parent)
    if {"sequential", "dense"} <= modes.keys():
        print("rate  sequential  dense  dense - sequential")
        for rate, seq in modes["sequential"].items():
            dense = modes["dense"].get(rate)
            if dense is not None:
                print(f"{rate:>4}  {seq:10.2f}  {dense:5.2f}  {dense - seq:+.2f}")


if __name__ == "__main__":
    main()
