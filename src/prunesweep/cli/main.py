"""`prunesweep` console script: the Hydra app (single runs, `--multirun` sweeps and Optuna rate searches)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from prunesweep.cli import run_folder
from prunesweep.cli.closing import closing_lines, closing_table
from prunesweep.config.overrides import check_argv
from prunesweep.config.paths import config_dir, register_resolvers
from prunesweep.config.schema import register_configs
from prunesweep.run import sweep_outcome
from prunesweep.util import orphans
from prunesweep.util.console import configure
from prunesweep.util.errors import PrunesweepError

log = logging.getLogger("prunesweep")

register_resolvers()
register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def app(cfg: DictConfig) -> bool | float:
    """Run one cell; True when it finished, False when it failed. A bad input ends a single run (or a search) with
    one line and exit status 2; in a plain `--multirun` sweep a failing cell is recorded (status.json) and the
    sweep goes on. Under the Optuna sweeper (`hydra/sweeper=rate_search`) the cell is a trial and its objective is
    returned."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    output_dir = Path(hydra_cfg.runtime.output_dir)
    # before the heavy imports below, which bring in tqdm; a sweep's lines name their cell
    configure(cfg.verbose, output_dir.name if multirun else None, parallel=orphans.is_worker())
    from prunesweep.run import rate_search as search
    from prunesweep.run.validate import validate

    if orphans.is_worker():
        orphans.end_with_parent()
    trial = multirun and search.is_search(hydra_cfg.sweeper)
    tolerant = multirun and not trial
    plan = None
    try:
        if trial:
            cfg.pruner.rate = round(cfg.pruner.rate, search.RATE_DECIMALS)
        # In a plain sweep a cell validates inside `run`, which records an invalid cell as failed and goes on.
        plan = None if tolerant else validate(cfg)
        if trial:
            search.check_search(cfg.search, cfg.benchmark)
        from prunesweep.run.cell import run  # heavy imports (lm-eval, peft) only after the settings are checked

        rows = run(cfg, output_dir, plan)
        if trial:
            return search.finish_trial(rows, cfg, output_dir, hydra_cfg.job.num)
        if not multirun:
            print(closing_table(rows))
            print("\n".join(closing_lines(output_dir, Path(cfg.paths.root_dir) / "outputs")))
        return True
    except PrunesweepError as exc:
        if plan is None and not multirun:  # the settings check failed: the run leaves no folder
            run_folder.discard()
        print(f"prunesweep: error: {f'{output_dir.name}: ' if tolerant else ''}{exc}", file=sys.stderr)
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
