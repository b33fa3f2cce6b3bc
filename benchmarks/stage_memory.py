"""Where a run's memory goes: the peak resident memory of each stage (model load / GGUF conversion, dense and
per-step evaluation, pruning, recovery) as its records carry them, beside the whole process's maximum resident set
(what `/usr/bin/time -v` reports) and the fp32 weight bytes.

    .venv/bin/python benchmarks/stage_memory.py                        # experiment=demo (SmolLM2-135M), W&B off
    .venv/bin/python benchmarks/stage_memory.py --experiment baselines pruner=wanda
    .venv/bin/python benchmarks/stage_memory.py --smoke                # experiment=smoke, seconds
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

from common import cli, parse, report

from prunesweep.store.results import RESULTS_FILE, read_results
from prunesweep.util.memory import RSS_FIELD

MIB = 1 << 20


def stage_peaks(rows: list[dict]) -> list[dict]:
    """One row per (step, stage) of the records: each stage's peak resident memory in MiB."""
    peaks: dict[tuple[int, str], dict] = {}
    for row in rows:
        entry = peaks.setdefault((row["step"], row["stage"]), {"step": row["step"], "stage": row["stage"]})
        for key, value in row.items():
            if key.endswith(RSS_FIELD):
                entry[key.removesuffix(RSS_FIELD)] = value / MIB
    return [peaks[key] for key in sorted(peaks)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("overrides", nargs="*", help="extra prunesweep overrides")
    args = parse(parser, "stage_memory", argv, experiment="smoke")
    with tempfile.TemporaryDirectory(prefix="prunesweep-memory-") as tmp:
        command = [f"experiment={args.experiment}", "logger=none", f"paths.root_dir={tmp}", *args.overrides]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        wall, _, done = cli(command, cwd=Path(tmp))
        if done.returncode:
            sys.exit(f"prunesweep {' '.join(command)} failed:\n{done.stderr[-3000:]}")
        process_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, the largest child so far
        (results,) = Path(tmp, "outputs", "runs").rglob(RESULTS_FILE)
        rows = read_results(results)
    stages = stage_peaks(rows)
    weights = 4 * rows[0]["total_params"] / MIB
    figures = {
        "wall_seconds": wall,
        "process_peak_mib": process_peak / 1024 if process_peak > before else None,
        "fp32_weights_mib": weights,
        "stages": stages,
    }
    report(args, figures)
    peak = figures["process_peak_mib"]
    shown = "not measurable (an earlier child of this process peaked higher)" if peak is None else f"{peak:.0f} MiB"
    print(f"{args.experiment}: {wall:.0f} s; whole process peak {shown}; fp32 weights {weights:.0f} MiB")
    names = sorted({k for s in stages for k in s} - {"step", "stage"})
    print("| step | stage | " + " | ".join(f"{n} peak MiB" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for s in stages:
        print(f"| {s['step']} | {s['stage']} | " + " | ".join(f"{s[n]:.0f}" if n in s else "–" for n in names) + " |")


if __name__ == "__main__":
    main()
