"""`prunesweep-eval`: lm-eval's own command line with the `prunesweep` model type and the offline tasks.

Every argument goes to lm-eval unchanged; only `--include_path <the package's tasks folder>` is added when none is
given, so `--tasks piqa` means the offline PIQA (data from $PRUNESWEEP_DATA_DIR) and tasks we do not ship resolve
to lm-eval's hub tasks (online)."""

from __future__ import annotations

import argparse
import fnmatch
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunesweep.evaluation.tasks import TASKS_DIR
from prunesweep.util.errors import PrunesweepError

INCLUDE_PATH = "--include_path"
# lm-eval warnings every call gives, about what prunesweep-eval does on purpose: (logger, message template).
OVERRIDE = ("lm_eval.tasks._index", "Task '%s' from %s overrides existing task from %s")  # ours replace lm-eval's
LOADED_MODEL = ("lm_eval.models.huggingface", "`pretrained` model kwarg is not of type `str`.")  # PrunesweepLM


class _Expected(logging.Filter):
    """Drops the OVERRIDE warnings of the offline tasks (not of other folders' tasks) and the LOADED_MODEL one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.name, record.msg) == OVERRIDE:
            path = record.args[1]  # the overriding task's YAML
            return not (isinstance(path, Path) and path.resolve().parent == TASKS_DIR)
        return not (record.name == LOADED_MODEL[0] and str(record.msg).startswith(LOADED_MODEL[1]))


@contextmanager
def _expected_warnings_dropped() -> Iterator[None]:
    """`_Expected` on the two loggers for the duration of the block."""
    loggers, expected = [logging.getLogger(OVERRIDE[0]), logging.getLogger(LOADED_MODEL[0])], _Expected()
    for logger in loggers:
        logger.addFilter(expected)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(expected)


def lm_eval_argv(argv: list[str]) -> list[str]:
    """`argv` plus `--include_path` of the offline tasks unless the caller gave one."""
    given = any(arg == INCLUDE_PATH or arg.startswith(f"{INCLUDE_PATH}=") for arg in argv)
    return argv if given or not argv else [*argv, INCLUDE_PATH, str(TASKS_DIR)]


def check_offline_data(args: argparse.Namespace) -> None:
    """PrunesweepError when an offline task that `--tasks` names (or a pattern of it matches) lacks its data folder
    or a file: lm-eval loads the model before any task's data."""
    from prunesweep.evaluation.tasks.loaders import DATASETS, resolve_data_dir

    include, tasks = getattr(args, "include_path", None), getattr(args, "tasks", None)
    if not (include and tasks and Path(include).resolve() == TASKS_DIR):
        return
    data_dir = ((args.model_args or {}) | (args.metadata or {})).get("data_dir")  # lm-eval's task metadata
    for name in sorted({name for pattern in tasks for name in fnmatch.filter(DATASETS, pattern)}):
        resolve_data_dir(name, data_dir)


def main(argv: list[str] | None = None) -> None:
    """Run lm-eval's `cli_evaluate` steps on `argv` (default: the process arguments), the offline data checked
    first; a bad input ends with one `prunesweep: error:` line and exit status 2."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    args = lm_eval_argv(sys.argv[1:] if argv is None else argv)
    saved, sys.argv = sys.argv, ["prunesweep-eval", *args]  # lm-eval's parser reads sys.argv
    try:
        with _expected_warnings_dropped():
            setup_logging()
            parser = HarnessCLI()
            parsed = parser.parse_args()
            check_offline_data(parsed)
            import prunesweep.evaluation.lm_eval_model  # noqa: F401 - registers the `prunesweep` model type

            parser.execute(parsed)
    except PrunesweepError as exc:
        print(f"prunesweep: error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        sys.argv = saved
