"""Wall time of a 5-rate sweep through the shared step store vs 5 independent runs of the same cells.

Both use the CLI exactly as a user would. "Independent" gives every cell its own empty store, so nothing is
shared (each evaluates its own dense baseline and walks its own trajectory); "shared" is one `--multirun`
sweep over one store (dense evaluated once, the iterative trajectory to 0.5 fills the lower-rate cells).

    .venv/bin/python benchmarks/sweep_sharing.py [--model smollm2_135m] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = [0.0, 0.1, 0.2, 0.3, 0.5]
BASE = [
    "experiment=demo_sweep",
    "logger=none",
    "benchmark=quick",
    "benchmark.tasks=[piqa]",
    "benchmark.limit=50",
    "benchmark.ppl_max_tokens=8192",
]


def prunesweep(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "prunesweep", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2_135m")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    common = [*BASE, f"model={args.model}", *args.overrides]
    with tempfile.TemporaryDirectory(prefix="sweep-sharing-") as tmp:
        root = Path(tmp)
        independent = [
            prunesweep(
                [
                    *common,
                    f"pruner.rate={rate}",
                    f"paths.store_dir={root}/store-{rate}",
                    f"hydra.run.dir={root}/run-{rate}",
                ]
            )
            for rate in RATES
        ]
        shared = prunesweep(
            [
                "-m",
                *common,
                f"pruner.rate={','.join(map(str, RATES))}",
                f"paths.store_dir={root}/store-shared",
                f"hydra.sweep.dir={root}/sweep",
            ]
        )
    report = {
        "rates": RATES,
        "independent_seconds": [round(t, 1) for t in independent],
        "independent_total_seconds": round(sum(independent), 1),
        "shared_sweep_seconds": round(shared, 1),
        "ratio_independent_over_shared": round(sum(independent) / shared, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
