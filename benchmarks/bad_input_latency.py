"""Seconds from a bad `prunesweep` command to its `prunesweep: error:` line, with the real console script.

Config errors (names, keys, ranges, folder names) and data errors (a broken data file, a folder that is not a
model, an unwritable store) are each run once in a scratch working directory; the script prints the time,
the exit status and the error line. Targets: < 5 s for config errors, < 30 s for data errors (no model loads).

    .venv/bin/python benchmarks/bad_input_latency.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("prunesweep")
CONFIG_ERRORS = [
    "experiment=nope",
    "model=nope",
    "benchmark.tasks=[nope]",
    "+pruner.ratee=0.3",
    "+benchmark.foo=1",
    "benchmark.ppl_max_tokens=-1",
    "+pruner.calibration.seq_len=0",
    "pruner=sparsegpt pruner.percdamp=0",
    "pruner=wanda pruner.pattern=3:2",
    "experiment_name=../../x",
]


def data_errors(scratch: Path, data_dir: Path) -> list[str]:
    """Overrides that point the smoke run at a broken input (built in `scratch`)."""
    broken = scratch / "data"
    shutil.copytree(data_dir, broken, copy_function=os.symlink)
    labels = broken / "piqa" / "valid.jsonl"
    text = labels.read_bytes()
    labels.unlink()
    labels.write_bytes(text[:5000])  # truncated mid-record
    (scratch / "not_a_model").mkdir()
    (scratch / "a_file").write_text("")
    return [
        f"paths.data_dir={broken}",
        f"model=llama_7b model.path={scratch / 'not_a_model'}",
        f"paths.store_dir={scratch / 'a_file' / 'store'}",
    ]


def timed(args: list[str], cwd: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    line = next((s for s in proc.stderr.splitlines() if s.startswith("prunesweep: error:")), "(no error line)")
    return elapsed, proc.returncode, line


def main() -> None:
    data_dir = Path(os.environ.get("PRUNESWEEP_DATA_DIR", "../shared/data")).resolve()
    with tempfile.TemporaryDirectory(prefix="prunesweep-bad-input-") as tmp:
        scratch = Path(tmp)
        cases = [("config", c) for c in CONFIG_ERRORS] + [("data", d) for d in data_errors(scratch, data_dir)]
        print(f"{'kind':6} {'seconds':>7} {'exit':>4}  command -> error line")
        for kind, override in cases:
            args = ["experiment=smoke", f"paths.data_dir={data_dir}", *override.split()]
            elapsed, code, line = timed(args, scratch)
            print(f"{kind:6} {elapsed:7.2f} {code:4d}  {override}\n{'':20}{line[:150]}")


if __name__ == "__main__":
    main()
