"""A running status whose process is gone reads as stopped, in the reader and in the report's records."""

import json
import os
import socket
import subprocess
import sys

from prunesweep.reporting.collect import load_outputs
from prunesweep.store.results import RESULTS_FILE
from prunesweep.store.status import STATUS_FILE, process_start, read_status, running_status
from prunesweep.util.atomic import write_json


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def status_of(tmp_path, **fields):
    write_json(tmp_path / STATUS_FILE, {"state": "running", "config_hash": "abc", **fields})
    return read_status(tmp_path)["state"]


def test_a_live_run_is_running(tmp_path):
    write_json(tmp_path / STATUS_FILE, running_status("abc"))
    status = read_status(tmp_path)
    assert status["state"] == "running" and status["pid"] == os.getpid() and status["host"] == socket.gethostname()
    assert status["started"] == process_start(os.getpid())


def test_a_killed_run_reads_as_stopped(tmp_path):
    assert status_of(tmp_path, pid=dead_pid(), host=socket.gethostname(), started=1.0) == "stopped"


def test_a_reused_pid_reads_as_stopped(tmp_path):
    assert status_of(tmp_path, pid=os.getpid(), host=socket.gethostname(), started=1.0) == "stopped"


def test_another_hosts_run_and_an_old_status_without_a_process_stay_running(tmp_path):
    assert status_of(tmp_path, pid=dead_pid(), host="elsewhere", started=1.0) == "running"
    assert status_of(tmp_path) == "running"


def test_the_report_says_stopped(tmp_path):
    run = tmp_path / "runs" / "cell"
    run.mkdir(parents=True)
    (run / RESULTS_FILE).write_text(json.dumps({"step": 0, "stage": "dense", "task": "piqa", "value": 0.5}) + "\n")
    write_json(run / STATUS_FILE, {"state": "running", "pid": dead_pid(), "host": socket.gethostname()})
    assert load_outputs(tmp_path)["state"].tolist() == ["stopped"]
