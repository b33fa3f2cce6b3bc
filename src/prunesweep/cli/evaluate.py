"""`prunesweep-eval`: lm-eval's own command line with the `prunesweep` model type and the offline tasks.

Every argument goes to lm-eval unchanged; only `--include_path <the package's tasks folder>` is added when none is
given, so `--tasks piqa` means the offline PIQA (data from $PRUNESWEEP_DATA_DIR) and tasks we do not ship resolve
to lm-eval's hub tasks (online)."""

from __future__ import annotations

import sys

from prunesweep.evaluation.tasks import TASKS_DIR
from prunesweep.util.errors import PrunesweepError

INCLUDE_PATH = "--include_path"


def lm_eval_argv(argv: list[str]) -> list[str]:
    """`argv` plus `--include_path` of the offline tasks unless the caller gave one."""
    given = any(arg == INCLUDE_PATH or arg.startswith(f"{INCLUDE_PATH}=") for arg in argv)
    return argv if given or not argv else [*argv, INCLUDE_PATH, str(TASKS_DIR)]


def main(argv: list[str] | None = None) -> None:
    """Run lm-eval's `cli_evaluate` on `argv` (default: the process arguments); a bad input ends with one
    `prunesweep: error:` line and exit status 2."""
    from lm_eval.__main__ import cli_evaluate

    import prunesweep.evaluation.lm_eval_model  # noqa: F401 - registers the `prunesweep` model type

    args = lm_eval_argv(sys.argv[1:] if argv is None else argv)
    saved, sys.argv = sys.argv, ["prunesweep-eval", *args]  # lm-eval's parser reads sys.argv
    try:
        cli_evaluate()
    except PrunesweepError as exc:
        print(f"prunesweep: error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        sys.argv = saved
