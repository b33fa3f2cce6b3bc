"""What the records of a data file look like, and the one checker that reads every record against it.

A file's layout (`Records`) names how it splits into records (JSON lines, a JSON array, CSV/TSV rows, groups of
text lines, or plain text with no records) and the pydantic models a record must validate against (required
keys, their types and label ranges). The schemas themselves live beside each reader (task loaders, corpora,
recovery data); `check_records` is the only code that applies them."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from prunesweep.util.errors import PrunesweepError

Line = tuple[int, Any]  # (1-based line number where the record starts, the record)
_SEPARATORS = re.compile(r"[\s,]*")
NonBlank = Annotated[str, StringConstraints(pattern=r"\S")]


class Record(BaseModel):
    """Base of every record schema: no type coercion ("1" is not 1, 0 is not False); unknown keys are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class TextRecord(Record):
    text: str


class AlpacaRecord(Record):
    instruction: str
    input: str = ""
    output: str


@dataclass(frozen=True)
class Records:
    """How a file splits into records and what each must be.

    format: "jsonl" | "json" (an array) | "csv" | "tsv" | "lines" | "text" (no records: UTF-8 text only).
    kinds: the record models; with several, the first whose keys the first record has is the file's kind and
    every record must fit it. fields: for "lines", the names of the consecutive lines forming one record (a record of
    one line skips blank lines)."""

    format: str
    kinds: tuple[type[Record], ...] = ()
    fields: tuple[str, ...] = ()


TEXT = Records("text")


def check_records(text: str, layout: Records) -> int:
    """Validate every record of `text` (a file's decoded content); the record count. PrunesweepError names the
    line and the field of the first bad record."""
    if layout.format == "text":
        return 0
    rows = list(_split(text, layout))
    if not rows:
        raise PrunesweepError("has no records")
    kind = _kind_of(rows[0][1], layout.kinds)
    for number, row in rows:
        try:
            kind.model_validate(row)
        except ValidationError as exc:
            field, message = first_error(exc)
            if field in layout.fields:  # a record of several lines: the field's own line
                number += layout.fields.index(field)
            raise PrunesweepError(f"line {number}: field {field!r}: {message}") from None
    return len(rows)


def _kind_of(first: Any, kinds: tuple[type[Record], ...]) -> type[Record]:
    """The first kind whose required keys the first record has (else the first kind, to name what is missing)."""
    for kind in kinds:
        required = [field.alias or name for name, field in kind.model_fields.items() if field.is_required()]
        if isinstance(first, dict) and all(key in first for key in required):
            return kind
    return kinds[0]


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(the dotted field, what is wrong with it and the value found) of the first error."""
    error = exc.errors(include_url=False)[0]
    shown = repr(error["input"])
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ".".join(str(part) for part in error["loc"]) or "record", f"{error['msg']} (got {shown})"


def _split(text: str, layout: Records) -> Iterator[Line]:
    if layout.format == "jsonl":
        return _json_lines(text)
    if layout.format == "json":
        return _json_array(text)
    if layout.format in ("csv", "tsv"):
        return _table(text, "," if layout.format == "csv" else "\t")
    if layout.format == "lines":
        return _line_groups(text, layout.fields)
    raise ValueError(f"unknown record format {layout.format!r}")


def _json_lines(text: str) -> Iterator[Line]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise PrunesweepError(f"line {number} is not valid JSON ({exc})") from None


def _json_array(text: str) -> Iterator[Line]:
    """The items of a JSON array with the line each starts on (the whole text was parsed once before)."""
    if not isinstance(json.loads(text), list):
        raise PrunesweepError("is not a JSON array of records")
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    line = 1 + text.count("\n", 0, position)
    while text[start := _SEPARATORS.match(text, position).end()] != "]":
        line += text.count("\n", position, start)
        item, position = decoder.raw_decode(text, start)
        yield line, item
        line += text.count("\n", start, position)


def _table(text: str, delimiter: str) -> Iterator[Line]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 2
    for row in reader:
        yield start, row
        start = reader.line_num + 1


def _line_groups(text: str, fields: tuple[str, ...]) -> Iterator[Line]:
    if len(fields) == 1:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield number, {fields[0]: line.strip()}
        return
    lines = text.splitlines()
    if len(lines) % len(fields):
        raise PrunesweepError(f"{len(lines)} lines is not a multiple of {len(fields)} (one record per {fields})")
    for start in range(0, len(lines), len(fields)):
        yield start + 1, dict(zip(fields, lines[start : start + len(fields)], strict=True))
