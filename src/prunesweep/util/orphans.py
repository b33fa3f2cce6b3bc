"""Launcher workers (joblib's loky processes, submitit's local jobs) end when the `prunesweep` process that
started them dies, so a killed sweep leaves nothing computing that a re-run would race."""

from __future__ import annotations

import os
import threading
import time

MAIN_PID_VARIABLE = "PRUNESWEEP_MAIN_PID"  # set by the main process, inherited by every worker it starts


def mark_main_process() -> None:
    """Called by the `prunesweep` command before Hydra launches anything."""
    os.environ[MAIN_PID_VARIABLE] = str(os.getpid())


def is_worker() -> bool:
    """True in a process started (directly or not) by a `prunesweep` command other than the command itself."""
    main = os.environ.get(MAIN_PID_VARIABLE)
    return main is not None and main != str(os.getpid())


def end_with_parent(poll_seconds: float = 1.0) -> None:
    """Exit this process as soon as its parent is gone (it is then re-parented, so its parent id changes).
    Polled from a daemon thread: Linux's PR_SET_PDEATHSIG would fire on the death of the parent *thread*
    (loky starts workers from a helper thread), and is not portable."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()
