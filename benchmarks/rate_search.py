"""Optuna rate search vs the full grid (each in its own store): trials run, distinct cells computed, wall time and
the highest rate within the budget each finds. Default: the tiny random model (`experiment=smoke`), piqa acc_norm.

    .venv/bin/python benchmarks/rate_search.py [--experiment smoke] [--max-drop 0.02] [--trials 8] [--seed 0]
    .venv/bin/python benchmarks/rate_search.py --smoke      # 2 trials, a 1-rate grid
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import cli, parse, report
from omegaconf import OmegaConf

from prunesweep.run.rate_search import score
from prunesweep.store.results import RESULTS_FILE, TRIAL_FILE, read_results

GRID = [round(0.1 * i, 1) for i in range(1, 10)]  # = the preset's range(0.1, 0.9, step=0.1)


def sweep(root: Path, experiment: str, *overrides: str) -> float:
    """Run one `prunesweep -m` under `root`; returns its wall time in seconds."""
    wall, _, done = cli(["-m", f"experiment={experiment}", f"paths.root_dir={root}", *overrides])
    if done.returncode:
        sys.exit(f"prunesweep sweep failed:\n{done.stderr[-3000:]}")
    return wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="smoke")
    parser.add_argument("--task", default="piqa")
    parser.add_argument("--metric", default="acc_norm")
    parser.add_argument("--max-drop", type=float, default=0.02)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=float, nargs="+", default=GRID, help="the full grid's rates")
    parser.set_defaults(model="tiny_llama")  # a search is dozens of cells: seconds each on the tiny model
    args = parse(parser, "rate_search", argv, trials=2, grid=[0.5])
    budget = OmegaConf.create({"task": args.task, "metric": args.metric, "max_drop": args.max_drop})
    measure = [f"search.task={args.task}", f"search.metric={args.metric}", f"search.max_drop={args.max_drop}"]
    with tempfile.TemporaryDirectory() as tmp:
        search_root, grid_root = Path(tmp, "search"), Path(tmp, "grid")
        search_s = sweep(
            search_root, args.experiment, f"model={args.model}", "hydra/sweeper=rate_search", *measure,
            f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.sampler.seed={args.seed}",
        )  # fmt: skip
        trials = [json.loads(p.read_text()) for p in search_root.rglob(TRIAL_FILE)]
        grid_s = sweep(
            grid_root, args.experiment, f"model={args.model}", "pruner.rate=" + ",".join(map(str, args.grid))
        )
        cells = [
            read_results(p) for p in (grid_root / "outputs" / "sweeps" / args.experiment).glob(f"*/{RESULTS_FILE}")
        ]
    grid = [score(rows, budget, rows[0]["target_rate"]) for rows in cells]
    computed = {t["rate"] for t in trials if not t["reused"]}
    print(f"budget: {args.task}/{args.metric} drop <= {args.max_drop} vs dense ({args.experiment})")
    for name, found in (("search", trials), ("grid", grid)):
        feasible = [t["rate"] for t in found if t["feasible"]]
        picked = f"{max(feasible):g}" if feasible else "none"
        print(f"{name}: {len(found)} trials, picked rate {picked}")
    print(f"search: {len(computed)} distinct rates computed, {len(trials) - len(computed)} trials from the store")
    print(f"wall time: search {search_s:.0f} s, grid {grid_s:.0f} s")
    report(args, {"trials": trials, "grid": grid, "search_seconds": search_s, "grid_seconds": grid_s})


if __name__ == "__main__":
    main()
