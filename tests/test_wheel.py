"""A built wheel works on its own: it carries the configs, paper grids and task YAMLs, and its console script
runs the smoke experiment from an empty folder outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from prunesweep.store.results import RESULTS_FILE, read_results

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` of a clean copy of the sources (the checkout gets no build/ folder), no downloads."""
    source = tmp_path_factory.mktemp("source")
    for folder in ("src", "conf", "experiments"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), "."]
    subprocess.run(pip, cwd=source, check=True, timeout=120)
    (built,) = dist.glob("prunesweep-*.whl")
    return built


def test_wheel_ships_configs_grids_and_task_yamls(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"prunesweep/conf/config.yaml", "prunesweep/conf/experiment/smoke.yaml"} <= names
    assert {
        "prunesweep/experiments/gholami_table3/reference.csv",
        "prunesweep/experiments/gholami_table3/README.md",
    } <= names
    assert {"prunesweep/evaluation/tasks/boolq.yaml", "prunesweep/evaluation/tasks/piqa.yaml"} <= names


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory, data_dir) -> tuple[Path, dict[str, str]]:
    """A fresh venv holding the wheel, and the environment to run it with. It sees this environment's
    dependencies through a .pth line (no downloads) but not its editable prunesweep: a .pth-added folder's own
    .pth files (the editable finder) are not processed."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PRUNESWEEP_ROOT", "PRUNESWEEP_STORE_DIR")}
    env |= {"PRUNESWEEP_DATA_DIR": data_dir, "WANDB_MODE": "disabled"}
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(install, env=env, check=True, timeout=120)  # before the .pth, which shows the editable install
    (Path(purelib) / "shared_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [python, "-c", "import prunesweep; print(prunesweep.__file__)"], env=env, capture_output=True, text=True
    )
    assert where.stdout.startswith(purelib), where.stdout + where.stderr
    return venv, env


def test_wheel_in_a_fresh_venv_runs_smoke_from_an_empty_folder(installed, tmp_path):
    venv, env = installed
    proc = subprocess.run(
        [venv / "bin" / "prunesweep", "experiment=smoke"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (results,) = (tmp_path / "outputs" / "runs" / "smoke").glob(f"*/{RESULTS_FILE}")
    assert f"results: {results}" in proc.stdout.splitlines()  # the closing lines
    assert "eval piqa" in proc.stderr and "[lm_eval" not in proc.stderr  # quiet console: our bars, not lm-eval's logs
    rows = read_results(results)
    assert {(r["step"], r["stage"]) for r in rows} == {(0, "dense"), (1, "pruned"), (2, "pruned")}
    assert {r["task"] for r in rows} == {"wikitext2", "piqa"}
    assert (tmp_path / "outputs" / "store").is_dir()
    assert not (REPO / "build").exists()


@pytest.mark.parametrize("how", ["--config-dir", "hydra.searchpath"])
def test_users_add_their_own_config_dir(installed, tmp_path, how):
    """A user's `experiment/mine.yaml` builds on a shipped preset, found through `--config-dir` or the search path."""
    venv, env = installed
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - smoke\nexperiment_name: mine\npruner:\n  rate: 0.3\n"
    )
    where = ["--config-dir", "conf"] if how == "--config-dir" else [f"hydra.searchpath=[file://{tmp_path}/conf]"]
    cmd = [venv / "bin" / "prunesweep", *where, "experiment=mine", "--cfg", "job"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment_name: mine" in proc.stdout and "rate: 0.3" in proc.stdout and "name: tiny_llama" in proc.stdout
