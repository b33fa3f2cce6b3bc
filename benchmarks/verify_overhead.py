"""Cost of the trust checks when a finished 3-rate smoke sweep is resumed.

First `prunesweep -m experiment=smoke pruner.rate=0.2,0.4,0.6` fills a scratch store and sweep folder. Then the
same cells are re-run in-process (the code the CLI runs) twice, timing the checks inside the total:
- `resume`: the same cell folders, so every cell is skipped as finished (inputs checked + hashed, no store read);
- `reuse`: new cell folders over the same store, so every step comes from the store (each entry's manifest
  is verified: size + sha256 of every file) and its checkpoint is linked into the cell.

    .venv/bin/python benchmarks/verify_overhead.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunesweep import inputs, runner, store
from prunesweep.config import register_configs
from prunesweep.paths import register_resolvers

RATES = ["0.2", "0.4", "0.6"]
CHECKS = [(store, "verify_manifest"), (runner, "check_inputs"), (runner, "fingerprints"), (inputs, "check_data_file")]


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


def cells(root: Path, sweep: str, data_dir: str) -> float:
    from hydra import compose, initialize_config_dir

    from prunesweep.paths import config_dir

    start = time.perf_counter()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for rate in RATES:
            overrides = ["experiment=smoke", f"pruner.rate={rate}", f"paths.data_dir={data_dir}",
                         f"paths.store_dir={root}/outputs/store"]  # fmt: skip
            runner.run(compose(config_name="config", overrides=overrides), root / sweep / f"rate={rate}")
    return time.perf_counter() - start


def main() -> None:
    data_dir = str(Path(os.environ.get("PRUNESWEEP_DATA_DIR", "../shared/data")).resolve())
    register_resolvers()
    register_configs()
    with tempfile.TemporaryDirectory(prefix="prunesweep-verify-") as tmp:
        root = Path(tmp)
        command = [sys.executable, "-m", "prunesweep", "-m", "experiment=smoke", f"pruner.rate={','.join(RATES)}",
                   f"paths.data_dir={data_dir}"]  # fmt: skip
        for label in ("first sweep", "re-run of the finished sweep"):
            start = time.perf_counter()
            subprocess.run(command, cwd=root, check=True, capture_output=True)
            print(f"{label} (CLI, 3 cells): {time.perf_counter() - start:.1f} s")
        cells(root, "sweep", data_dir)  # the in-process first pass (imports, caches), not timed
        for mode, folder in (("resume", "sweep"), ("reuse", "fresh")):
            spent: dict[str, float] = defaultdict(float)
            with timing(spent):
                total = cells(root, folder, data_dir)
            checks = spent["verify_manifest"] + spent["check_inputs"] + spent["fingerprints"]
            print(f"{mode}: total {total:.2f} s; verify_manifest {spent['verify_manifest']:.3f} s, "
                  f"input checks {spent['check_inputs']:.3f} s (of which file parsing {spent['check_data_file']:.3f} s), "
                  f"data hashing {spent['fingerprints']:.3f} s; all checks {checks:.3f} s = {100 * checks / total:.1f}% of the in-process time")  # fmt: skip


if __name__ == "__main__":
    main()
