"""What every benchmark shares: the project's own configs composed as the `prunesweep` command composes them
(model, data folder, pruners), the CLI run as a user runs it, a `--smoke` mode on the tiny random model that the
test suite runs so no benchmark can rot, and where the reports go."""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from prunesweep.config.compose import compose_config
from prunesweep.models.loader import LoadedModel, load_model
from prunesweep.pruning.registry import make_pruner
from prunesweep.util.atomic import write_json

ROOT = Path(__file__).resolve().parents[1]
SMOKE_MODEL = "tiny_llama"

__all__ = ["ROOT", "cli", "compose", "data_dir", "load", "make_pruner", "parse", "report"]


def parse(
    parser: argparse.ArgumentParser, name: str, argv: list[str] | None = None, **smoke: Any
) -> argparse.Namespace:
    """Parse `argv` with `--model`, `--threads`, `--out` and `--smoke` added; `--smoke` swaps in the tiny model and
    the `smoke` defaults (flags given explicitly still win) and writes `<name>.smoke.json`. `name` may name
    arguments as format fields (`sweep_sharing/{pruner}`)."""
    parser.add_argument("--model", default="smollm2_135m", help="a model config of conf/model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared, busy cores)")
    parser.add_argument("--out", type=Path, default=None, help=f"report JSON (default outputs/benchmarks/{name}.json)")
    parser.add_argument("--smoke", action="store_true", help="seconds on the tiny random model (run by the tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(model=SMOKE_MODEL, **smoke)
        args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "outputs" / "benchmarks" / f"{name.format(**vars(args))}{'.smoke' if args.smoke else ''}.json"
    torch.set_num_threads(args.threads)
    return args


def compose(*overrides: str) -> DictConfig:
    """The run config of `overrides`, with outputs (model cache, store) under the repository's `outputs/`."""
    return compose_config([f"paths.root_dir={ROOT}", *overrides])


def data_dir() -> str:
    """The data folder the runner would read (`PRUNESWEEP_DATA_DIR`, else `../shared/data`)."""
    return compose().paths.data_dir


def load(model: str, *overrides: str) -> LoadedModel:
    """A fresh copy of `conf/model/<model>.yaml` (with `overrides` such as `model.dtype=bfloat16`), loaded as the
    runner loads it."""
    cfg = compose(f"model={model}", *overrides)
    return load_model(cfg.model, cfg.paths.cache_dir, seed=cfg.seed)


def cli(args: list[str], cwd: Path | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run `prunesweep <args>` in a fresh interpreter; (wall seconds, CPU seconds, the finished process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, start = usage.ru_utime + usage.ru_stime, time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "prunesweep", *args], cwd=cwd, capture_output=True, text=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime - cpu, done


def report(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    """Write the figures with the arguments that produced them to `args.out` (atomically) and say where."""
    arguments = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    write_json(args.out, {"args": arguments, "created": time.strftime("%Y-%m-%d %H:%M:%S"), **figures})
    print(f"wrote {args.out}")
