"""`prunesweep` console script: the Hydra app (single runs, `--multirun` sweeps and Optuna rate searches)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from prunesweep import orphans, sweep_outcome
from prunesweep.config import check_config, register_configs
from prunesweep.console import closing_lines, configure
from prunesweep.errors import PrunesweepError
from prunesweep.overrides import check_argv
from prunesweep.paths import config_dir, register_resolvers

log = logging.getLogger("prunesweep")

register_resolvers()
register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def app(cfg: DictConfig) -> bool | float:
    """Run one cell; True when it finished, False when it failed. A bad input ends a single run (or a search) with
    one line and exit status 2; in a plain `--multirun` sweep a failing cell is recorded (status.json) and the
    sweep goes on. Under the Optuna sweeper (`hydra/sweeper=rate_search`) the cell is a trial and its objective is
    returned."""
    from prunesweep import search

    configure(cfg.verbose)  # before the heavy imports below, which bring in tqdm
    if orphans.is_worker():
        orphans.end_with_parent()
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    trial = multirun and search.is_search(hydra_cfg.sweeper)
    tolerant = multirun and not trial
    output_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        if not tolerant:  # before the heavy imports below (lm-eval, datasets): a bad value fails in seconds
            check_config(cfg)  # no torch yet: the common keys and ranges
            from prunesweep.pruning.registry import checked_settings

            checked_settings(cfg)  # the method's own keys, choices and ranges (imports its module)
        if trial:
            search.check_search(cfg.search, cfg.benchmark)
            cfg.pruner.rate = round(cfg.pruner.rate, search.RATE_DECIMALS)
        from prunesweep.results import summary_table
        from prunesweep.runner import run  # heavy imports (torch, lm-eval) only after the settings are checked

        rows = run(cfg, output_dir)
        if trial:
            return search.finish_trial(rows, cfg, output_dir, hydra_cfg.job.num)
        if not multirun:
            print(summary_table(rows))
            print("\n".join(closing_lines(output_dir, Path(cfg.paths.root_dir) / "outputs")))
        return True
    except PrunesweepError as exc:
        print(f"prunesweep: error: {exc}", file=sys.stderr)
        if not tolerant:
            sys.exit(2)
    except Exception:
        if not tolerant:
            raise
        log.exception("cell %s failed; the sweep goes on", hydra_cfg.runtime.output_dir)
    return False


def main() -> None:
    """Check the command line's group options and names, run Hydra, and end a sweep with its summary line
    (exit status 1 when any cell failed)."""
    orphans.mark_main_process()
    try:
        check_argv(sys.argv[1:])
    except PrunesweepError as exc:
        print(f"prunesweep: error: {exc}", file=sys.stderr)
        sys.exit(2)
    app()
    summary = sweep_outcome.last_sweep
    if summary is not None:
        print(f"prunesweep: sweep: {summary.line()}", file=sys.stderr)
        if summary.failed:
            sys.exit(1)
