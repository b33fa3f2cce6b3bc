"""`prunesweep --help` names the tool and lists only options one can choose."""

import subprocess
import sys
from pathlib import Path

from prunesweep.config.paths import config_dir, group_options


def test_help_lists_the_shipped_options_and_no_schema(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "prunesweep", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("prunesweep: ")
    assert "_schema" not in proc.stdout and "powered by Hydra" not in proc.stdout
    for group in ("model", "pruner", "benchmark", "experiment", "hydra/sweeper"):
        assert f"{group}: {', '.join(group_options(group, [Path(config_dir())]))}" in lines
    assert "--multirun,-m : Run multiple jobs with the configured launcher and sweeper" in lines
    assert list(tmp_path.iterdir()) == []
