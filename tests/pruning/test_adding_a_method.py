"""The README's "Adding a method" recipe, followed end to end by a package outside the project: one module, one
config file, `PRUNESWEEP_PLUGINS`, and the runner, registry, store and records work with it unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prunesweep.store.results import RESULTS_FILE, read_results

METHOD = '''
from dataclasses import dataclass
import time

import torch

from prunesweep.config.schema import PrunerConfig, bounded, choices
from prunesweep.pruning.base import PruneResult, Pruner, PrunerKind
from prunesweep.pruning.masks import module_sparsity, prunable_linears

Order = choices("Order", "smallest", "largest")


@dataclass
class PerMatrixConfig(PrunerConfig):
    name: str = "per_matrix"
    order: Order = Order["smallest"]
    margin: float = bounded(0.0, 0.0, 1.0)


class PerMatrixPruner(Pruner):
    """Zero the same fraction of every target matrix, by |w| in the chosen order."""

    Config = PerMatrixConfig
    kind = PrunerKind.unstructured

    def prune_to(self, model, target, ctx):
        start = time.perf_counter()
        with torch.no_grad():
            for module in prunable_linears(model, list(self.cfg.targets)).values():
                scores = module.weight.abs().flatten()
                k = int(target * scores.numel())
                order = torch.argsort(scores, descending=self.cfg.order == "largest")
                module.weight.view(-1)[order[:k]] = 0
        achieved = module_sparsity(model, list(self.cfg.targets))
        return PruneResult(target, achieved, time.perf_counter() - start)
'''

PRESET = """_target_: my_methods.per_matrix.PerMatrixPruner
name: per_matrix
rate: 0.5
order: smallest
"""


def run_cli(tmp_path: Path, data_dir: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRUNESWEEP_ROOT", "PRUNESWEEP_STORE"))}
    env |= {"PRUNESWEEP_PLUGINS": "my_methods", "PYTHONPATH": str(tmp_path), "PRUNESWEEP_DATA_DIR": data_dir}
    command = [sys.executable, "-m", "prunesweep", "--config-dir", str(tmp_path / "my_conf"), *overrides]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_method_of_ones_own_package_runs_through_the_unchanged_runner(tmp_path, data_dir):
    (tmp_path / "my_methods").mkdir()
    (tmp_path / "my_methods" / "__init__.py").write_text("")
    (tmp_path / "my_methods" / "per_matrix.py").write_text(METHOD)
    (tmp_path / "my_conf" / "pruner").mkdir(parents=True)
    (tmp_path / "my_conf" / "pruner" / "per_matrix.yaml").write_text(PRESET)

    done = run_cli(tmp_path, data_dir, "experiment=smoke", "pruner=per_matrix", "hydra.run.dir=run")
    assert done.returncode == 0, done.stderr
    rows = read_results(tmp_path / "run" / RESULTS_FILE)
    assert {row["method"] for row in rows} == {"per_matrix"}
    final = [row for row in rows if row["step"] == 2]
    assert final and all(abs(row["achieved_sparsity"] - 0.5) < 0.01 for row in final)

    bad = run_cli(tmp_path, data_dir, "experiment=smoke", "pruner=per_matrix", "pruner.order=middle")
    assert bad.returncode == 2
    assert "pruner.order (per_matrix): Invalid value 'middle', expected one of [smallest, largest]" in bad.stderr
