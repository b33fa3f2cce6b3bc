"""`prunesweep` console script: the Hydra app (single runs and `--multirun` sweeps)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from prunesweep.config import register_configs
from prunesweep.console import closing_lines, configure
from prunesweep.errors import PrunesweepError
from prunesweep.paths import config_dir, register_resolvers

log = logging.getLogger("prunesweep")

register_resolvers()
register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def app(cfg: DictConfig) -> None:
    """Run one cell. A bad input ends a single run with one line and exit status 2; in a `--multirun` sweep
    a failing cell is recorded (status.json) and the sweep goes on."""
    configure(cfg.verbose)  # before the heavy imports below, which bring in tqdm
    from prunesweep.results import summary_table
    from prunesweep.runner import run  # heavy imports (torch, lm-eval) only after composition succeeded

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    output_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        rows = run(cfg, output_dir)
        if not multirun:
            print(summary_table(rows))
            print("\n".join(closing_lines(output_dir, Path(cfg.paths.root_dir) / "outputs")))
    except PrunesweepError as exc:
        print(f"prunesweep: error: {exc}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
    except Exception:
        if not multirun:
            raise
        log.exception("cell %s failed; the sweep goes on", hydra_cfg.runtime.output_dir)


def main() -> None:
    app()
