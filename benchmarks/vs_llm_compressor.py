"""prunesweep's Wanda and SparseGPT against llm-compressor's (`WandaPruningModifier` / `SparseGPTModifier` through
`oneshot`, llmcompressor 0.14.0.1) on the same inputs: wall and CPU seconds of each, and prunesweep / llm-compressor.

Same inputs on both sides: the fp32 HF folder prunesweep converts the model into (SmolLM2-135M: the de-quantized
GGUF under `outputs/.cache/models/`), one calibration tensor (C4 windows from `calibration_batch`, 128 x 128 token
ids by default) written as safetensors and read by both, sequential calibration (each decoder layer calibrated on
its pruned predecessors), the same calibration batch (8), torch threads `--threads`. Cases: Wanda and SparseGPT at
50% unstructured and 2:4, the linears of the decoder layers (llm-compressor: `targets=["re:model.layers.\\d*$"]`,
as its 2:4 example). Runs interleave (prunesweep, llm-compressor, prunesweep, ...; `--repeats`), each a fresh
process timed around the pruning call alone (`prune_to` / `oneshot`) and around the whole process; medians.
After the last repeat: achieved sparsity per decoder layer of both pruned models (equal zero counts?), the
agreement of their zero masks, and WikiText-2 perplexity of both (and of the dense model) through prunesweep's
`perplexity`, from the pruned models saved as safetensors HF folders (`--skip-ppl` skips the PPL).

llm-compressor pins transformers<=5.17, so it runs in its own venv (`--venv`, default
`outputs/benchmarks/llmc_venv`), made once and reused: `python -m venv`, `pip install torch==2.13.0` (first: the
CPU wheel here), `pip install llmcompressor==0.14.0.1`. Without it (`--no-install`, a failed install) the peer is
skipped with one line and the report says `"peer": "skipped: <why>"`. `--smoke` (tiny random model) never installs:
prunesweep alone unless the venv already exists.

Usage: .venv/bin/python benchmarks/vs_llm_compressor.py --threads 1 [--repeats 3] [--cases wanda:unstructured
       sparsegpt:2:4 ...] [--samples 128] [--seq-len 128] [--venv DIR] [--no-install] [--skip-ppl] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import ROOT, compose, data_dir, load, make_pruner, parse, report
from safetensors.torch import load_file, save_file

import prunesweep
from prunesweep.data.corpora import calibration_batch, evaluation_text
from prunesweep.evaluation.perplexity import perplexity
from prunesweep.models.loader import _gguf_folder
from prunesweep.pruning.base import PruneContext

CASES = ["wanda:unstructured", "wanda:2:4", "sparsegpt:unstructured", "sparsegpt:2:4"]
SIDES = ("prunesweep", "llmcompressor")
PEER = "llmcompressor==0.14.0.1"
PEER_TORCH = "torch==2.13.0"  # before llmcompressor: an unpinned torch pulls a multi-GB CUDA build
SOURCE_ROOT = Path(prunesweep.__file__).resolve().parents[1]  # the children import the same prunesweep
LAYER_LINEAR = re.compile(r"model\.layers\.(\d+)\..*_proj\.weight")

# Run by the peer venv's python: prune one case with llm-compressor, write the timings (and the pruned model).
PEER_SCRIPT = r"""
import json, shutil, sys, time
from pathlib import Path

spec = json.loads(sys.argv[1])
import torch

torch.set_num_threads(spec["threads"])
import compressed_tensors, llmcompressor, transformers
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

ids = load_file(spec["calibration"])["input_ids"]
dataset = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist()})
tokenizer = AutoTokenizer.from_pretrained(spec["model"])
model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
options = {"sparsity": spec["rate"], "mask_structure": spec["mask_structure"], "targets": [r"re:model.layers.\d*$"]}
if spec["method"] == "sparsegpt":
    modifier = SparseGPTModifier(**options, block_size=128, dampening_frac=0.01)
else:
    modifier = WandaPruningModifier(**options)
wall, cpu = time.perf_counter(), time.process_time()
oneshot(
    model=model, tokenizer=tokenizer, dataset=dataset, recipe=modifier, pipeline="sequential",
    batch_size=spec["batch_size"], num_calibration_samples=len(ids), max_seq_length=ids.shape[1],
    shuffle_calibration_samples=False,
)
prune_wall, prune_cpu = time.perf_counter() - wall, time.process_time() - cpu
if spec["save"]:  # plain safetensors (oneshot's save_pretrained would write compressed-tensors formats)
    out = Path(spec["save"])
    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    for name in Path(spec["model"]).iterdir():
        if name.suffix != ".safetensors" and name.is_file():
            shutil.copy(name, out / name.name)
versions = {m.__name__: m.__version__ for m in (llmcompressor, transformers, torch, compressed_tensors)}
Path(spec["result"]).write_text(json.dumps({"prune_wall_s": prune_wall, "prune_cpu_s": prune_cpu,
                                            "versions": versions}))
"""


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def prune_here(spec: dict[str, Any]) -> None:
    """The prunesweep side of one run (this script with `--run`): load the folder, prune, write the timings."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = load_file(spec["calibration"])["input_ids"]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32, use_safetensors=True)
    pruner = make_pruner(
        spec["method"],
        pattern=spec["pattern"],
        calibration={"n_samples": ids.shape[0], "seq_len": ids.shape[1], "mode": "sequential"},
    )
    pruner.check(model)
    wall, cpu = time.perf_counter(), time.process_time()
    result = pruner.prune_to(model, spec["rate"], PruneContext(tokenizer, lambda: ids))
    prune_wall, prune_cpu = time.perf_counter() - wall, time.process_time() - cpu
    if spec["save"]:
        model.save_pretrained(spec["save"])
        tokenizer.save_pretrained(spec["save"])
    figures = {"prune_wall_s": prune_wall, "prune_cpu_s": prune_cpu, "achieved": result.achieved}
    Path(spec["result"]).write_text(json.dumps(figures))


def peer_python(venv: Path, install: bool) -> tuple[Path | None, str]:
    """The peer venv's python (made and installed once if `install`), or None and why not."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import llmcompressor; print(llmcompressor.__version__)"]
    if python.is_file() and subprocess.run(check, capture_output=True, text=True).returncode == 0:
        return python, "ready"
    if not install:
        return None, f"no llm-compressor venv at {venv} (and --no-install)"
    print(f"installing {PEER} into {venv} (once) ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", PEER_TORCH],
        [str(python), "-m", "pip", "install", PEER],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[-1]
            return None, f"`python {' '.join(step[1:])}` failed: {last}"
    return python, "installed"


def run_once(
    side: str, case: str, args: argparse.Namespace, inputs: dict[str, Path], peer: Path | None, save: Path | None
) -> dict[str, Any]:
    """One fresh process pruning `case` on `side`: its timings (prune call, whole process) or why it failed."""
    method, pattern = case.split(":", 1)
    result = inputs["scratch"] / f"result-{side}.json"
    result.unlink(missing_ok=True)
    spec = {
        "method": method,
        "pattern": pattern,
        "mask_structure": "0:0" if pattern == "unstructured" else pattern,
        "rate": args.rate,
        "model": str(inputs["model"]),
        "calibration": str(inputs["calibration"]),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "save": str(save) if save else None,
        "result": str(result),
    }
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
    if side == "prunesweep":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, __file__, "--run", json.dumps(spec), f"--threads={args.threads}"]
    else:  # nothing of prunesweep's env leaks into the peer's
        env.pop("PYTHONPATH", None)
        env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        command = [str(peer), str(inputs["peer_script"]), json.dumps(spec)]
    row: dict[str, Any] = {"side": side, "method": method, "pattern": pattern, "load_average": os.getloadavg()[0]}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, start = usage.ru_utime + usage.ru_stime, time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=inputs["scratch"], timeout=args.run_timeout
        )
    except subprocess.TimeoutExpired:
        return {**row, "error": f"timed out after {args.run_timeout} s"}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    row |= {"process_wall_s": time.perf_counter() - start, "process_cpu_s": usage.ru_utime + usage.ru_stime - cpu}
    if done.returncode or not result.is_file():
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return {**row, "error": lines[-1], "stderr_tail": "\n".join(lines[-15:])}
    return {**row, **json.loads(result.read_text()), "load_average_after": os.getloadavg()[0]}


def summarize(runs: list[dict[str, Any]], cases: list[str]) -> list[dict[str, Any]]:
    """Per case: the median seconds of each side and prunesweep / llm-compressor."""
    rows = []
    for case in cases:
        method, pattern = case.split(":", 1)
        row: dict[str, Any] = {"method": method, "pattern": pattern}
        for side in SIDES:
            done = [r for r in runs if (r["side"], r["method"], r["pattern"]) == (side, method, pattern)]
            ok = [r for r in done if "error" not in r]
            row[f"{side}_runs"] = len(ok)
            if len(ok) < len(done):
                row[f"{side}_error"] = next(r["error"] for r in done if "error" in r)
            for key in ("prune_wall_s", "prune_cpu_s", "process_wall_s", "process_cpu_s"):
                row[f"{side}_{key}"] = median([r[key] for r in ok])
        for key in ("prune_wall_s", "prune_cpu_s", "process_wall_s", "process_cpu_s"):
            row[f"ratio_{key}"] = ratio(row[f"prunesweep_{key}"], row[f"llmcompressor_{key}"])
        row["load_average"] = median(
            [r["load_average"] for r in runs if (r["method"], r["pattern"]) == (method, pattern)]
        )
        rows.append(row)
    return rows


def layer_zeros(folder: Path) -> dict[int, list[torch.Tensor]]:
    """The zero masks of every decoder layer's linears in a saved HF folder, by layer index."""
    masks: dict[int, list[torch.Tensor]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        for name, tensor in sorted(load_file(file).items()):
            if match := LAYER_LINEAR.fullmatch(name):
                masks.setdefault(int(match.group(1)), []).append(tensor == 0)
    return dict(sorted(masks.items()))


def compare(folders: dict[str, Path]) -> dict[str, Any]:
    """Achieved sparsity per decoder layer of both pruned models, whether the zero counts match, mask agreement."""
    zeros = {side: layer_zeros(folder) for side, folder in folders.items()}
    a, b = zeros["prunesweep"], zeros["llmcompressor"]
    if not a or sorted(a) != sorted(b):
        return {"error": f"decoder-layer linears differ: {sorted(a)} vs {sorted(b)}"}
    per_layer, agree, total = [], 0, 0
    for index in a:
        count = [sum(int(m.sum()) for m in side[index]) for side in (a, b)]
        numel = sum(m.numel() for m in a[index])
        same = sum(int((x == y).sum()) for x, y in zip(a[index], b[index], strict=True))
        agree, total = agree + same, total + numel
        per_layer.append(
            {"layer": index, "prunesweep": count[0] / numel, "llmcompressor": count[1] / numel,
             "zero_count_equal": count[0] == count[1], "mask_agreement": same / numel}
        )  # fmt: skip
    return {
        "sparsity_match": all(layer["zero_count_equal"] for layer in per_layer),
        "max_layer_sparsity_diff": max(abs(layer["prunesweep"] - layer["llmcompressor"]) for layer in per_layer),
        "prunesweep_achieved": statistics.fmean(layer["prunesweep"] for layer in per_layer),
        "llmcompressor_achieved": statistics.fmean(layer["llmcompressor"] for layer in per_layer),
        "mask_agreement": agree / total,
        "min_layer_mask_agreement": min(layer["mask_agreement"] for layer in per_layer),
        "per_layer": per_layer,
    }


def folder_ppl(folder: Path, tokenizer: Any, text: str, args: argparse.Namespace) -> float:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    return perplexity(model, tokenizer, text, args.seq_len, args.ppl_tokens)


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]], checks: dict[str, Any]) -> str:
    lines = [
        "| method | pattern | prunesweep prune s (cpu) | llm-compressor prune s (cpu) | ratio wall | ratio cpu | "
        "process s: prunesweep / llm-compressor | ratio process wall | ratio process cpu | load avg | "
        "sparsity ps / llmc (equal) | mask agreement | PPL ps / llmc |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        case = f"{r['method']}:{r['pattern']}"
        check = checks.get(case, {})
        sparsity = (
            f"{check['prunesweep_achieved']:.4f} / {check['llmcompressor_achieved']:.4f} ({check['sparsity_match']})"
            if "sparsity_match" in check
            else "–"
        )
        ppl = f"{fmt(check.get('prunesweep_ppl'), '.2f')} / {fmt(check.get('llmcompressor_ppl'), '.2f')}"
        lines.append(
            f"| {r['method']} | {r['pattern']} | {fmt(r['prunesweep_prune_wall_s'])} "
            f"({fmt(r['prunesweep_prune_cpu_s'])}) | {fmt(r['llmcompressor_prune_wall_s'])} "
            f"({fmt(r['llmcompressor_prune_cpu_s'])}) | {fmt(r['ratio_prune_wall_s'], '.2f')} | "
            f"{fmt(r['ratio_prune_cpu_s'], '.2f')} | {fmt(r['prunesweep_process_wall_s'])} / "
            f"{fmt(r['llmcompressor_process_wall_s'])} | {fmt(r['ratio_process_wall_s'], '.2f')} | "
            f"{fmt(r['ratio_process_cpu_s'], '.2f')} | {fmt(r['load_average'], '.2f')} | {sparsity} | "
            f"{fmt(check.get('mask_agreement'), '.4f')} | {ppl} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=CASES, help="method:pattern (wanda|sparsegpt : unstructured|2:4)")
    parser.add_argument("--rate", type=float, default=0.5, help="unstructured sparsity (2:4 implies 0.5)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per case and side")
    parser.add_argument("--samples", type=int, default=128, help="calibration sequences (C4)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens a calibration sequence and a PPL window")
    parser.add_argument("--batch-size", type=int, default=8, help="calibration batch (prunesweep's; peer set to it)")
    parser.add_argument("--venv", type=Path, default=ROOT / "outputs" / "benchmarks" / "llmc_venv")
    parser.add_argument("--scratch", type=Path, default=None, help="work files (default: beside --out)")
    parser.add_argument("--no-install", action="store_true", help="never make the peer venv; skip the peer instead")
    parser.add_argument("--skip-ppl", action="store_true")
    parser.add_argument("--ppl-tokens", type=int, default=16384)
    parser.add_argument("--run-timeout", type=float, default=3600, help="seconds before a run is stopped")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # the prunesweep child's spec (JSON)
    args = parse(
        parser, "vs_llm_compressor", argv, cases=["wanda:unstructured", "sparsegpt:2:4"], repeats=1, samples=4,
        seq_len=16, batch_size=2, ppl_tokens=256,
    )  # fmt: skip
    if args.run is not None:
        prune_here(json.loads(args.run))
        return
    for case in args.cases:
        if case not in CASES:
            parser.error(f"case {case!r} is not one of {', '.join(CASES)}")
    scratch = args.scratch or args.out.parent / f"{args.out.stem}_work"
    scratch.mkdir(parents=True, exist_ok=True)

    # the inputs both sides read: one fp32 HF folder, one calibration tensor
    loaded = load(args.model)
    cfg = compose(f"model={args.model}")
    if cfg.model.source == "gguf_package":
        model_folder = _gguf_folder(cfg.model, Path(cfg.paths.cache_dir))  # converted by `load`
    else:
        model_folder = scratch / f"model-{args.model}"
        loaded.model.save_pretrained(model_folder)
        loaded.tokenizer.save_pretrained(model_folder)
    ids, _ = calibration_batch(loaded.tokenizer, "c4", data_dir(), args.samples, args.seq_len, seed=0)
    inputs = {"model": model_folder, "calibration": scratch / "calibration.safetensors", "scratch": scratch}
    save_file({"input_ids": ids.contiguous()}, str(inputs["calibration"]))
    inputs["peer_script"] = scratch / "llmc_prune.py"
    inputs["peer_script"].write_text(PEER_SCRIPT)

    peer, why = peer_python(args.venv, install=not (args.no_install or args.smoke))
    if peer is None:
        print(f"llm-compressor skipped: {why}", flush=True)
    sides = SIDES if peer is not None else SIDES[:1]
    print(f"inputs: {model_folder}, calibration {tuple(ids.shape)}; peer: {why}", flush=True)

    runs: list[dict[str, Any]] = []
    figures: dict[str, Any] = {
        "peer": f"skipped: {why}" if peer is None else PEER,
        "model_folder": str(model_folder),
        "load_average_start": list(os.getloadavg()),
    }
    saved: dict[str, dict[str, Path]] = {}
    for repeat in range(args.repeats):
        for case in args.cases:
            for side in sides:
                save = None
                if repeat == args.repeats - 1:
                    save = scratch / "pruned" / f"{side}-{case.replace(':', '_')}"
                    shutil.rmtree(save, ignore_errors=True)
                run = run_once(side, case, args, inputs, peer, save)
                runs.append({"repeat": repeat, **run})
                if save and "error" not in run:
                    saved.setdefault(case, {})[side] = save
                shown = {k: v for k, v in runs[-1].items() if k != "stderr_tail"}
                print(json.dumps(shown), flush=True)
                rows = summarize(runs, args.cases)
                report(args, {**figures, "rows": rows, "runs": runs})  # after every run: a long run keeps its rows
    versions = next((r["versions"] for r in runs if "versions" in r), None)
    figures["peer_versions"] = versions

    checks: dict[str, dict[str, Any]] = {}
    for case, folders in saved.items():
        if len(folders) == 2:
            checks[case] = compare(folders)
    if args.skip_ppl:
        figures["ppl"] = "skipped (--skip-ppl)"
    else:
        text, _ = evaluation_text("wikitext2", data_dir())
        start = time.perf_counter()
        figures["dense_ppl"] = perplexity(loaded.model, loaded.tokenizer, text, args.seq_len, args.ppl_tokens)
        figures["ppl"] = f"wikitext2, {args.ppl_tokens} tokens, windows of {args.seq_len}"
        for case, folders in saved.items():
            for side, folder in folders.items():
                checks.setdefault(case, {})[f"{side}_ppl"] = folder_ppl(folder, loaded.tokenizer, text, args)
        figures["ppl_s"] = time.perf_counter() - start
    rows = summarize(runs, args.cases)
    figures |= {"load_average_end": list(os.getloadavg()), "rows": rows, "checks": checks, "runs": runs}
    print(table(rows, checks))
    if "dense_ppl" in figures:
        print(f"dense WikiText-2 PPL {figures['dense_ppl']:.2f}")
    report(args, figures)


if __name__ == "__main__":
    main()
