"""What each pruning method costs as the model grows: randomly initialised LLaMA shapes from SmolLM2-135M through
~0.5B to TinyLlama-1.1B (`conf/model/random_*.yaml`, no weights downloaded), in float32 and bfloat16.

Every (size, method, dtype, model.offload) cell runs in a fresh interpreter, so its peak memory is its own:
- `prune_s`: wall seconds of the pruner's `prune_to` alone (model load and calibration batch come before it);
- `prune_peak_rss_mib`: the prune stage's peak resident memory as a run records it (`util.memory.stage_peak`,
  the resident model included); `prune_peak_anon_mib` its anonymous part (the resident set less mapped files:
  under `offload=disk` the weights are mapped files, which the kernel can drop and read again);
- `process_peak_mib`: the process's maximum resident set after pruning (getrusage, the kernel's VmHWM): model
  load, calibration batch and pruning together, before the save; `baseline_peak_mib` the same before the model
  loads (the interpreter and its imports, ~0.4 GiB, part of every memory figure);
- `zeros_sha256`: a hash of the zero pattern of every prunable linear (equal across `model.offload` modes when the
  masks are);
- `store_mib`: the weight files of the pruned checkpoint as the project's step store saves it (`StepStore.save`
  into a temporary store; the store's `checkpoint_bytes`): safetensors, an unstructured method's zeros included.
Per method, dtype and offload, the exponents of prune time and of prune-stage memory (also of its part above the
baseline) in the parameter count (least-squares slope in log-log). Perplexity means nothing on random weights and is not measured.

Methods are their `conf/pruner` presets at the preset rates (magnitude, wanda, sparsegpt, owl: 0.5 of the
linears' weights; layer_drop: 0.25 of the layers; llm_pruner: 0.2 of the parameters); `sparsegpt_dense` is
sparsegpt with `calibration.mode=dense`. Calibration is each preset's (C4 windows, 32 x 128; llm_pruner 10 x 128)
unless `--samples` / `--seq-len` set it for every method; each row records what it used. Keep `--threads 1` (the
default) unless the machine is otherwise idle: OpenMP threads on busy cores spin, and elementwise ops were measured
10x slower with 2 threads than with 1 on 2 shared cores (magnitude on the 135M shape: 175 s vs 7 s).

    .venv/bin/python benchmarks/scale_ladder.py                             # fp32, 3 sizes x 7 methods
    .venv/bin/python benchmarks/scale_ladder.py --dtypes float32 bfloat16 \\
        --extra random_tinyllama_1p1b:wanda:bfloat16 --samples 16 --seq-len 128 --cell-timeout 1800
    .venv/bin/python benchmarks/scale_ladder.py --sizes random_tinyllama_1p1b --methods wanda sparsegpt \\
        --offloads none cpu disk                                            # offload on the 1.1B shape
    .venv/bin/python benchmarks/scale_ladder.py --smoke                     # tiny_llama, wanda in memory and on disk
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
from common import SMOKE_MODEL, data_dir, load, make_pruner, parse, report
from omegaconf import OmegaConf

import prunesweep
from prunesweep.data.corpora import calibration_batch
from prunesweep.models.params import count_params
from prunesweep.pruning.base import PruneContext
from prunesweep.pruning.masks import prunable_linears
from prunesweep.store.steps import StepStore
from prunesweep.util.hashing import content_key
from prunesweep.util.memory import stage_peak

LADDER = ["random_smollm2_135m", "random_0p5b", "random_tinyllama_1p1b"]
# ladder method -> (conf/pruner preset, options merged over it)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "magnitude": ("magnitude", {}),
    "wanda": ("wanda", {}),
    "sparsegpt": ("sparsegpt", {}),  # the preset's sequential calibration
    "sparsegpt_dense": ("sparsegpt", {"calibration": {"mode": "dense"}}),
    "owl": ("owl", {}),
    "layer_drop": ("layer_drop", {}),
    "llm_pruner": ("llm_pruner", {}),
}
DTYPES = ("float32", "bfloat16")
OFFLOADS = ("none", "cpu", "disk")
MIB = 1 << 20
FITTED = ("time_exponent", "memory_exponent", "memory_above_baseline_exponent")
SOURCE_ROOT = Path(prunesweep.__file__).resolve().parents[1]  # the cells import the same prunesweep as this process


@dataclass(frozen=True)
class Cell:
    """One measurement: a model config of the ladder, a ladder method, a dtype, where the weights wait."""

    size: str
    method: str
    dtype: str
    offload: str = "none"

    @classmethod
    def parse(cls, spec: str) -> Cell:
        """`size:method:dtype[:offload]`, e.g. `random_tinyllama_1p1b:wanda:bfloat16:disk` (an argparse type)."""
        parts = spec.split(":")
        if (
            not 3 <= len(parts) <= 4
            or parts[1] not in METHODS
            or parts[2] not in DTYPES
            or parts[3:4] not in ([], *([o] for o in OFFLOADS))
        ):
            raise argparse.ArgumentTypeError(
                f"{spec!r} is not size:method:dtype[:offload] (methods {', '.join(METHODS)}; dtypes "
                f"{', '.join(DTYPES)}; offload {', '.join(OFFLOADS)})"
            )
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.size}:{self.method}:{self.dtype}:{self.offload}"


def measure(cell: Cell, samples: int | None, seq_len: int | None) -> dict[str, Any]:
    """Load, calibrate, prune and store one cell in this process; its figures (run by the `--cell` child)."""
    preset, options = METHODS[cell.method]
    sizes = {key: value for key, value in (("n_samples", samples), ("seq_len", seq_len)) if value is not None}
    pruner = make_pruner(preset, **{**options, "calibration": {**options.get("calibration", {}), **sizes}})
    baseline_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    loaded = load(cell.size, f"model.dtype={cell.dtype}", f"model.offload={cell.offload}")
    model, tokenizer = loaded.model, loaded.tokenizer
    params = count_params(model)[0]
    calib = pruner.cfg.calibration if pruner.uses_calibration else None
    start = time.perf_counter()
    ids = None
    if calib is not None:  # built before the prune stage, so neither its time nor its memory is the method's
        ids, _ = calibration_batch(
            tokenizer, calib.dataset, data_dir(), calib.n_samples, calib.seq_len, calib.seed, calib.sampling
        )
    calibration_s = time.perf_counter() - start
    pruner.check(model)
    with stage_peak("prune") as memory:
        start = time.perf_counter()
        result = pruner.prune_to(model, pruner.cfg.rate, PruneContext(tokenizer, lambda: ids))
        prune_s = time.perf_counter() - start
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    zeros = hashlib.sha256()  # the zero pattern of every linear: equal across offload modes when the masks are
    for _, module in sorted(prunable_linears(model, list(pruner.cfg.targets)).items()):
        zeros.update(numpy.packbits((module.weight == 0).flatten().numpy()).tobytes())
    with tempfile.TemporaryDirectory(prefix="prunesweep-ladder-") as store, stage_peak("save") as saved:
        start = time.perf_counter()
        (record,) = StepStore(store).save(content_key({"cell": str(cell)}), [{}], model, tokenizer)
        save_s = time.perf_counter() - start
    element = next(model.parameters()).element_size()
    return {
        "size": cell.size,
        "method": cell.method,
        "dtype": cell.dtype,
        "offload": cell.offload,
        "preset": preset,
        "params": params,
        "weights_mib": params * element / MIB,
        "rate": pruner.cfg.rate,
        "achieved": result.achieved,
        "params_after": count_params(model)[0],
        "calibration": None if calib is None else OmegaConf.to_container(calib, resolve=True, enum_to_str=True),
        "calibration_s": calibration_s,
        "prune_s": prune_s,
        **{key.removesuffix("_bytes") + "_mib": value / MIB for key, value in (memory | saved).items()},
        "process_peak_mib": process_peak / MIB,
        "baseline_peak_mib": baseline_peak / MIB,
        "save_s": save_s,
        "zeros_sha256": zeros.hexdigest(),
        "store_bytes": record["checkpoint_bytes"],
        "store_mib": record["checkpoint_bytes"] / MIB,
        "load_average": list(os.getloadavg()),
    }


def run_cell(cell: Cell, args: argparse.Namespace) -> dict[str, Any]:
    """`measure(cell)` in a fresh interpreter (this script with `--cell`); its row, or one saying why it failed."""
    flags = [f"--{name.replace('_', '-')}={value}" for name in ("samples", "seq_len") if (value := getattr(args, name))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]))}
    failed = {"size": cell.size, "method": cell.method, "dtype": cell.dtype, "offload": cell.offload}
    with tempfile.TemporaryDirectory(prefix="prunesweep-ladder-cell-") as tmp:
        out = Path(tmp, "cell.json")
        command = [sys.executable, __file__, "--cell", str(cell), f"--threads={args.threads}", f"--out={out}", *flags]
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.cell_timeout)
        except subprocess.TimeoutExpired:
            return {**failed, "error": f"timed out after {args.cell_timeout} s"}
        if done.returncode:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            return {**failed, "error": lines[-1], "stderr_tail": "\n".join(lines[-20:])}
        return json.loads(out.read_text())["cell"]


def exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log y on log x; None with fewer than two distinct x or a y that is not positive."""
    if len({x for x, _ in points}) < 2 or any(y <= 0 for _, y in points):
        return None
    xs, ys = zip(*((math.log(x), math.log(y)) for x, y in points), strict=True)
    return statistics.linear_regression(xs, ys).slope


def exponents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per measured (method, dtype, offload): the exponents of time and prune-stage memory in the parameters (None
    below two sizes)."""
    fits = []
    for method, dtype, offload in itertools.product(METHODS, DTYPES, OFFLOADS):
        done = [
            r for r in rows
            if (r["method"], r["dtype"], r["offload"]) == (method, dtype, offload) and "error" not in r
        ]  # fmt: skip
        if done:
            time_exp = exponent([(r["params"], r["prune_s"]) for r in done])
            memory_exp = exponent([(r["params"], r["prune_peak_rss_mib"]) for r in done])
            above = exponent([(r["params"], r["prune_peak_rss_mib"] - r["baseline_peak_mib"]) for r in done])
            fits.append(
                {"method": method, "dtype": dtype, "offload": offload, "sizes": len(done), "time_exponent": time_exp,
                 "memory_exponent": memory_exp, "memory_above_baseline_exponent": above}
            )  # fmt: skip
    return fits


def calibration_label(row: dict[str, Any]) -> str:
    """`32x128 sequential`, or `–` for a method that reads no calibration text."""
    calib = row.get("calibration")
    return "–" if calib is None else f"{calib['n_samples']}x{calib['seq_len']} {calib['mode']}"


def table(rows: list[dict[str, Any]], fits: list[dict[str, Any]]) -> str:
    """The cells and the exponents as markdown tables."""
    lines = [
        "| size | params (M) | dtype | offload | method | calibration | prune s | prune peak MiB | prune peak anon MiB "
        "(% of weights) | process peak MiB | store MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['size']} | {r['params'] / 1e6:.1f} |" if "params" in r else f"| {r['size']} | |"
        if "error" in r:
            lines.append(f"{head} {r['dtype']} | {r['offload']} | {r['method']} | | failed: {r['error']} | | | | |")
            continue
        anon = f"{r['prune_peak_anon_mib']:.0f} ({100 * r['prune_peak_anon_mib'] / r['weights_mib']:.0f}%)"
        lines.append(
            f"{head} {r['dtype']} | {r['offload']} | {r['method']} | {calibration_label(r)} | {r['prune_s']:.2f} | "
            f"{r['prune_peak_rss_mib']:.0f} | {anon} | {r['process_peak_mib']:.0f} | {r['store_mib']:.0f} |"
        )
    lines += [
        "",
        "| method | dtype | offload | sizes | time exponent | memory exponent | memory above baseline exponent |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in fits:
        shown = " | ".join("–" if f[key] is None else f"{f[key]:.2f}" for key in FITTED)
        lines.append(f"| {f['method']} | {f['dtype']} | {f['offload']} | {f['sizes']} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=LADDER, help="model configs of conf/model (not --model)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=["float32"])
    parser.add_argument("--offloads", nargs="+", choices=OFFLOADS, default=["none"], help="model.offload of the grid")
    parser.add_argument(
        "--extra", nargs="+", type=Cell.parse, default=[], help="cells after the grid: size:method:dtype[:offload]"
    )
    parser.add_argument("--samples", type=int, default=None, help="calibration sequences (default: each preset's)")
    parser.add_argument("--seq-len", type=int, default=None, help="calibration tokens a sequence (default: presets')")
    parser.add_argument("--cell-timeout", type=float, default=None, help="seconds before a cell is stopped")
    parser.add_argument("--cell", type=Cell.parse, default=None, help=argparse.SUPPRESS)  # the child's one cell
    args = parse(
        parser, "scale_ladder", argv, sizes=[SMOKE_MODEL], methods=["wanda"], samples=2, seq_len=32,
        extra=[Cell(SMOKE_MODEL, "wanda", "float32", "disk")],
    )  # fmt: skip
    if args.cell is not None:
        report(args, {"cell": measure(args.cell, args.samples, args.seq_len)})
        return

    grid = [Cell(*cell) for cell in itertools.product(args.sizes, args.methods, args.dtypes, args.offloads)]
    cells = list(dict.fromkeys([*grid, *args.extra]))
    rows: list[dict[str, Any]] = []
    for number, cell in enumerate(cells, start=1):
        print(f"[{number}/{len(cells)}] {cell} (load average {os.getloadavg()[0]:.2f})", flush=True)
        rows.append(run_cell(cell, args))
        print(json.dumps(rows[-1]), flush=True)
        report(args, {"rows": rows, "exponents": exponents(rows)})  # after every cell: a long ladder keeps its rows
    print(table(rows, exponents(rows)))


if __name__ == "__main__":
    main()
