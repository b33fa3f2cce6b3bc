"""Every input a run reads, checked before the first model load: each data file is readable in its format
(JSON, JSON lines, CSV, BZ2, UTF-8 text; not empty) and every record in it has the keys, types and label ranges
its reader's schema declares; a local model folder holds a model whose weight files are complete; the folders
the run writes to are writable. A problem is one line naming the file (and the record's line and field)."""

from __future__ import annotations

import bz2
import errno
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

from omegaconf import DictConfig
from pydantic import StringConstraints, ValidationError

from prunesweep.data.corpora import CORPUS_FILES, CORPUS_RECORDS, corpus_file
from prunesweep.data.records import Record, Records, check_records, first_error
from prunesweep.evaluation.tasks.loaders import DATASETS
from prunesweep.models.safetensors_header import check_safetensors
from prunesweep.recovery.data import dataset_location, dataset_records
from prunesweep.util.errors import PrunesweepError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # torch.save / pickle weight files
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class DataFile:
    role: str  # benchmark | calibration | recovery
    path: Path
    layout: Records  # what its records look like


@dataclass(frozen=True)
class RunInputs:
    """The one list of what a run reads, built once and used to check and to hash it: every local data file by
    role (a file read in two roles is listed in both) and a hub recovery dataset's id."""

    data_dir: Path
    files: list[DataFile]
    recovery_hub_id: str | None = None

    def of(self, role: str) -> list[Path]:
        return [file.path for file in self.files if file.role == role]


def run_inputs(cfg: DictConfig, uses_calibration: bool) -> RunInputs:
    """Every input the run will read (call after the names were checked)."""
    data_dir = Path(cfg.paths.data_dir)
    files = [
        DataFile("benchmark", data_dir / CORPUS_FILES[name], CORPUS_RECORDS[name]) for name in cfg.benchmark.perplexity
    ]
    for task in offline_tasks(cfg.benchmark):
        layouts = zip(DATASETS[task].files, DATASETS[task].records, strict=True)
        files += [DataFile("benchmark", data_dir / rel, layout) for rel, layout in layouts]
    if uses_calibration:
        corpus = corpus_file(cfg.pruner.calibration.dataset, data_dir)  # names an unknown corpus first
        files.append(DataFile("calibration", corpus.path, CORPUS_RECORDS[corpus.name]))
    hub_id = None
    if cfg.recovery.kind != "none":
        where = dataset_location(cfg.recovery.dataset, data_dir)
        if isinstance(where, str):  # a hub dataset id
            hub_id = where
        else:
            files.append(DataFile("recovery", where, dataset_records(cfg.recovery.dataset)))
    return RunInputs(data_dir, files, hub_id)


def offline_tasks(benchmark: DictConfig) -> list[str]:
    return list(benchmark.tasks) if benchmark.offline else []


def check_inputs(cfg: DictConfig, inputs: RunInputs) -> None:
    """Data files, model folder and writable folders (the run folder is checked by the runner)."""
    counts = {file.path: check_data_file(file.path, file.layout) for file in inputs.files}
    for task in offline_tasks(cfg.benchmark):
        if DATASETS[task].labelled:
            records, labels = (Path(cfg.paths.data_dir) / rel for rel in DATASETS[task].files[:2])
            if counts[records] != counts[labels]:
                raise PrunesweepError(
                    f"data file {labels}: {counts[labels]} labels for the {counts[records]} records of {records}"
                )
    if cfg.model.source == "hf" and Path(cfg.model.path).expanduser().is_dir():
        check_model_folder(Path(cfg.model.path).expanduser())
    check_writable(Path(cfg.paths.store_dir), "paths.store_dir")
    if cfg.model.source == "gguf_package":
        check_writable(Path(cfg.paths.cache_dir), "paths.cache_dir")


def check_data_file(path: Path, layout: Records) -> int:
    """Raise PrunesweepError when `path` is empty, does not parse in its layout's format or a record breaks its
    schema; the record count. A file that passed is not read again in this process while its size and mtime are
    unchanged (as `file_sha256`)."""
    stat = path.stat()
    return _check_data_file(path.resolve(), stat.st_size, stat.st_mtime_ns, layout)


@cache  # only passes are cached: a raised error is not
def _check_data_file(path: Path, _size: int, _mtime_ns: int, layout: Records) -> int:
    raw = path.read_bytes()
    try:
        if path.suffix == ".bz2":
            raw = bz2.decompress(raw)
        text = raw.decode("utf-8")
        if not text.strip():
            raise PrunesweepError("is empty")
        return check_records(text, layout)
    except PrunesweepError as exc:
        raise PrunesweepError(f"data file {path}: {exc}") from None
    except (OSError, EOFError, ValueError) as exc:  # bad BZ2 stream, not UTF-8, not JSON
        raise PrunesweepError(f"data file {path}: cannot be read ({type(exc).__name__}: {exc})") from None


def check_model_folder(folder: Path) -> None:
    """A local model folder needs a config.json and complete safetensors weights, named as its index says (or the
    single `model.safetensors`); pickled weights are refused (loading them could run code)."""
    config = folder / "config.json"
    if not config.is_file():
        raise PrunesweepError(f"model folder {folder}: no config.json (not a Hugging Face model folder)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PrunesweepError(f"model file {config}: not valid JSON ({exc})") from None
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise PrunesweepError(
            f"model folder {folder}: {pickles[0]} is a pickled weight file; only safetensors are loaded "
            "(convert it with save_pretrained(..., safe_serialization=True) and remove it)"
        )
    present = {p.name for p in folder.glob("*.safetensors")}
    if not present:
        raise PrunesweepError(f"model folder {folder}: no weight files (*.safetensors)")
    index = folder / WEIGHTS_INDEX
    weight_map = _weight_map(index) if index.is_file() else None
    named = set(weight_map.values()) if weight_map is not None else {WEIGHTS_FILE}
    if missing := sorted(named - present):
        raise PrunesweepError(f"model folder {folder}: weight file {missing[0]} not found")
    if stray := sorted(present - named):
        where = f"not named by {WEIGHTS_INDEX}" if weight_map is not None else f"beside {WEIGHTS_FILE} (no index)"
        raise PrunesweepError(f"model folder {folder}: weight file {stray[0]} is {where}")
    headers = {name: check_safetensors(folder / name) for name in sorted(named)}
    for tensor, name in (weight_map or {}).items():
        if tensor not in headers[name]:
            raise PrunesweepError(f"model file {index}: tensor {tensor!r} is not in {name}")


class WeightIndex(Record):
    weight_map: dict[str, Annotated[str, StringConstraints(pattern=r"^[^/\\]+\.safetensors$")]]


def _weight_map(index: Path) -> dict[str, str]:
    """tensor -> file of a sharded folder's index (files are plain names inside the folder)."""
    try:
        return WeightIndex.model_validate(json.loads(index.read_text(encoding="utf-8"))).weight_map
    except ValueError as exc:  # not JSON, or a ValidationError
        detail = "field {!r}: {}".format(*first_error(exc)) if isinstance(exc, ValidationError) else str(exc)
        raise PrunesweepError(f"model file {index}: {detail}") from None


def check_writable(folder: Path, what: str) -> None:
    """Prove a file can be written in `folder`, or in the nearest existing folder above it where it is still to be
    created, creating nothing (the check's unnamed temp file leaves no trace)."""
    existing = next(path for path in (folder.absolute(), *folder.absolute().parents) if path.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise PrunesweepError(f"{what} {folder} is not writable ({exc.strerror or exc})") from None
