"""A cell's `status.json`: running, done or failed. A running status names its process (pid, host and the
process's start time), so a cell whose run was killed without a word (SIGKILL, an OOM kill, a lost machine) reads
as `stopped` on that host instead of running forever."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
STOPPED = "stopped"  # read, never written: a running status whose process is gone


def running_status(config_hash: str) -> dict[str, Any]:
    """The status a cell writes when it starts: this process's pid, host and start time."""
    pid = os.getpid()
    return {"state": "running", "config_hash": config_hash, "pid": pid, "host": socket.gethostname(),
            "started": process_start(pid)}  # fmt: skip


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The folder's status (None when it has none or it does not parse); `running` whose process is gone reads as
    `stopped`."""
    try:
        status = json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    if status.get("state") == "running" and process_gone(status):
        return {**status, "state": STOPPED}
    return status


def process_gone(status: dict[str, Any]) -> bool:
    """True when the process a status names has ended on this host, or its pid now belongs to a later process. A
    process of another host (a submitit job) is taken as alive: only its own host can tell."""
    pid = status.get("pid")
    if status.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started, recorded = process_start(pid), status.get("started")
    return started is not None and isinstance(recorded, int | float) and abs(started - recorded) > 1


def process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch) from Linux's /proc; None elsewhere or when it is gone."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))  # fmt: skip
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 2)
