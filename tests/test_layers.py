"""The layer contract in pyproject.toml holds for the package, and it fails on an import that runs up the layers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(LINT_IMPORTS), "--config", str(config), "--no-cache"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_layers():
    result = lint_imports(REPO / "src", REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    package = tmp_path / "prunesweep"
    shutil.copytree(REPO / "src" / "prunesweep", package, ignore=shutil.ignore_patterns("__pycache__"))
    errors = package / "util" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom prunesweep.run import cell  # noqa: E402\n")
    config = shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")  # the same contract
    result = lint_imports(tmp_path, config)
    assert result.returncode == 1
    assert "prunesweep.util is not allowed to import prunesweep.run" in result.stdout
    assert "prunesweep.util.errors -> prunesweep.run.cell" in result.stdout
