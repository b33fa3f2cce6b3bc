"""Cost of the trust checks when a finished 3-rate smoke sweep is resumed.

First `prunesweep -m experiment=smoke pruner.rate=0.2,0.4,0.6` fills a scratch store and sweep folder. Then the
same cells are re-run in-process (the code the CLI runs) twice, timing the checks inside the total:
- `resume`: the same cell folders, so every cell is skipped as finished (inputs checked + hashed, no store read);
- `reuse`: new cell folders over the same store, so every step comes from the store (each entry's manifest
  is verified: size + sha256 of every file) and its checkpoint is linked into the cell.

    .venv/bin/python benchmarks/verify_overhead.py
    .venv/bin/python benchmarks/verify_overhead.py --smoke      # one cell
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import cli, compose, data_dir, parse, report

from prunesweep.run import cell, fingerprint, inputs
from prunesweep.store import steps as store

# (module, function) as the validation looks them up at call time
CHECKS = [
    (store, "verify_manifest"),
    (inputs, "check_inputs"),
    (fingerprint, "fingerprints"),
    (inputs, "check_data_file"),
]


@contextmanager
def timing(spent: dict[str, float]) -> Iterator[None]:
    """While active, every check adds its time to `spent[name]`."""
    originals = [(module, name, getattr(module, name)) for module, name in CHECKS]
    for module, name, original in originals:

        def wrapped(*args, _original=original, _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - start

        setattr(module, name, wrapped)
    try:
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def cells(root: Path, sweep: str, rates: list[str]) -> float:
    start = time.perf_counter()
    for rate in rates:
        cfg = compose("experiment=smoke", f"pruner.rate={rate}", f"paths.store_dir={root}/outputs/store")
        cell.run(cfg, root / sweep / f"rate={rate}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="+", default=["0.2", "0.4", "0.6"], help="the smoke sweep's cells")
    args = parse(parser, "verify_overhead", argv, rates=["0.5"])
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="prunesweep-verify-") as tmp:
        root = Path(tmp)
        command = ["-m", "experiment=smoke", f"pruner.rate={','.join(args.rates)}", f"paths.data_dir={data_dir()}"]
        for label in ("first sweep", "re-run of the finished sweep"):
            wall, _, done = cli(command, cwd=root)
            if done.returncode:
                raise SystemExit(f"prunesweep {' '.join(command)} failed:\n{done.stderr[-3000:]}")
            print(f"{label} (CLI, {len(args.rates)} cells): {wall:.1f} s")
            figures[label] = {"wall_seconds": wall}
        cells(root, "sweep", args.rates)  # the in-process first pass (imports, caches), not timed
        for mode, folder in (("resume", "sweep"), ("reuse", "fresh")):
            spent: dict[str, float] = defaultdict(float)
            with timing(spent):
                total = cells(root, folder, args.rates)
            checks = spent["verify_manifest"] + spent["check_inputs"] + spent["fingerprints"]
            print(f"{mode}: total {total:.2f} s; verify_manifest {spent['verify_manifest']:.3f} s, "
                  f"input checks {spent['check_inputs']:.3f} s (of which file parsing {spent['check_data_file']:.3f} s), "
                  f"data hashing {spent['fingerprints']:.3f} s; all checks {checks:.3f} s = {100 * checks / total:.1f}% of the in-process time")  # fmt: skip
            figures[mode] = {"total_seconds": total, **spent}
    report(args, figures)


if __name__ == "__main__":
    main()
