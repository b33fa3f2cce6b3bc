"""What a run's numbers depend on besides its settings: the bytes of every data file it reads and the versions
of the code that computes them. Part of every store key and cell identity, so a changed data file (or another
data dir, or an upgraded lm-eval) re-runs the work that read it instead of reusing stale numbers."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from huggingface_hub import try_to_load_from_cache
from omegaconf import DictConfig, OmegaConf

from prunesweep.models.sources import packaged_gguf_path
from prunesweep.run.inputs import RunInputs
from prunesweep.run.teacher import distils, teacher_model_config
from prunesweep.util.hashing import content_key, file_sha256

CODE_PACKAGES = ("prunesweep", "torch", "transformers", "lm_eval", "peft", "torch_pruning")


def code_versions() -> dict[str, str]:
    """Versions of the packages that compute the numbers (read from metadata: nothing is imported)."""
    return {package: version(package.replace("_", "-")) for package in CODE_PACKAGES}


def model_source(model: DictConfig, seed: int) -> tuple[str, str]:
    """(where the base weights come from, a hash of them) without loading the model: the GGUF file's sha256,
    the sha256 of every file of a local folder (config, weights, tokenizer), the hub commit, or the random-init
    config and seed."""
    if model.source == "gguf_package":
        path = packaged_gguf_path(model.package, model.gguf_file)
        return f"{model.package}/{model.gguf_file}", file_sha256(path)[:16]
    if model.source == "random":
        spec = {"architecture": model.architecture, "config": OmegaConf.to_container(model.random_config)}
        return f"random:{model.architecture}", content_key({**spec, "seed": seed}, length=16)
    folder = Path(model.path).expanduser()
    if folder.is_dir():
        files = {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
        return str(folder), content_key(files, length=16)
    return model.path, hub_commit(model.path, model.revision)


def hub_commit(repo_id: str, revision: str | None) -> str:
    """The commit a hub revision (branch, tag or sha) resolves to in the local cache, which names the content of
    every file of the repo; the revision itself when the repo is not cached yet (nothing is downloaded here)."""
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):  # .../snapshots/<commit>/config.json
        return Path(cached).parent.name
    return revision or "main"


def fingerprints(cfg: DictConfig, inputs: RunInputs) -> dict[str, Any]:
    """Everything beyond the config that shapes a cell's results: the code's versions, the base model's hash and
    the sha256 of every input file by role (validated inputs only: call after `check_inputs`)."""
    shas = {
        role: {path: file_sha256(path) for path in inputs.of(role)} for role in ("benchmark", "calibration", "recovery")
    }
    prints: dict[str, Any] = {
        "code": code_versions(),
        "benchmark": {str(path.relative_to(inputs.data_dir)): sha for path, sha in shas["benchmark"].items()},
        "model": model_source(cfg.model, cfg.seed)[1],
    }
    if shas["calibration"]:
        prints["calibration"] = next(iter(shas["calibration"].values()))
    if shas["recovery"] or inputs.recovery_hub_id:
        prints["recovery"] = inputs.recovery_hub_id or next(iter(shas["recovery"].values()))
    if distils(cfg) and cfg.recovery.distill.teacher is not None:
        prints["teacher"] = model_source(teacher_model_config(cfg), cfg.seed)[1]
    return prints
