"""Paper table specs are data: `experiments/<name>/table.yaml` beside its README and reference.csv, checked here."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from prunesweep.data.records import first_error
from prunesweep.reporting.tables import Column, TableSpec
from prunesweep.util.errors import PrunesweepError

SPEC_FILE = "table.yaml"


class _ColumnFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    task: str
    metric: str
    label: str


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    title: str
    methods: list[str]  # empty: every method
    columns: list[_ColumnFile]
    average: list[str] = []  # column labels
    keys: list[str] = []


def load_specs(experiments_dir: Path) -> dict[str, TableSpec]:
    """The spec of every table folder below `experiments_dir` (one holding a `table.yaml`), by folder name."""
    return {path.parent.name: load_spec(path) for path in sorted(Path(experiments_dir).glob(f"*/{SPEC_FILE}"))}


def load_spec(path: Path) -> TableSpec:
    """One table spec; a malformed file or an average over a column the table lacks is one line naming it."""
    try:
        spec = _SpecFile.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        raise PrunesweepError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except ValidationError as exc:
        field, message = first_error(exc)
        raise PrunesweepError(f"{path}: {field}: {message}") from None
    columns = tuple(Column(c.task, c.metric, c.label) for c in spec.columns)
    unknown = sorted(set(spec.average) - {c.label for c in columns})
    if unknown:
        raise PrunesweepError(f"{path}: average names {', '.join(unknown)}, which are not column labels")
    name = path.parent.name
    return TableSpec(name, spec.title, tuple(spec.methods), columns, tuple(spec.average), tuple(spec.keys))
