"""Seconds from a bad `prunesweep` command to its `prunesweep: error:` line, with the real console script.

Config errors (names, keys, ranges, folder names) and data errors (a broken data file, a folder that is not a
model, an unwritable store) are each run once in a scratch working directory; the script prints the time,
the exit status and the error line. Targets: < 5 s for config errors, < 30 s for data errors (no model loads).

    .venv/bin/python benchmarks/bad_input_latency.py
    .venv/bin/python benchmarks/bad_input_latency.py --smoke     # one config and one data error
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from common import cli, data_dir, parse, report

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
    elapsed, _, proc = cli(args, cwd=cwd)
    line = next((s for s in proc.stderr.splitlines() if s.startswith("prunesweep: error:")), "(no error line)")
    return elapsed, proc.returncode, line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None, help="only the first N config and N data errors")
    args = parse(parser, "bad_input_latency", argv, cases=1)
    data = Path(data_dir()).resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="prunesweep-bad-input-") as tmp:
        scratch = Path(tmp)
        cases = [("config", c) for c in CONFIG_ERRORS[: args.cases]]
        cases += [("data", d) for d in data_errors(scratch, data)[: args.cases]]
        print(f"{'kind':6} {'seconds':>7} {'exit':>4}  command -> error line")
        for kind, override in cases:
            elapsed, code, line = timed(["experiment=smoke", f"paths.data_dir={data}", *override.split()], scratch)
            print(f"{kind:6} {elapsed:7.2f} {code:4d}  {override}\n{'':20}{line[:150]}")
            rows.append({"kind": kind, "override": override, "seconds": elapsed, "exit": code, "line": line})
    report(args, {"rows": rows})


if __name__ == "__main__":
    main()
