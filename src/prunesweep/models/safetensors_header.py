"""The one check of a safetensors file's header, read before any tensor is: every entry well-formed (dtype,
shape, data offsets), its bytes consistent with dtype x shape, the entries disjoint and inside the file. Model
folders (`inputs`) and structural checkpoints (`pruning.structural.manifest`) both call it."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from prunesweep.data.records import Record, first_error
from prunesweep.util.errors import PrunesweepError

# bytes per element of each safetensors dtype (the format's spec)
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E4M3FNUZ": 1, "F8_E5M2": 1, "F8_E5M2FNUZ": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
METADATA = "__metadata__"
Offset = Annotated[int, Field(ge=0)]


class TensorEntry(Record):
    dtype: Literal[tuple(DTYPE_BYTES)]
    shape: list[Offset]
    data_offsets: Annotated[list[Offset], Field(min_length=2, max_length=2)]  # [start, end) in the data

    def nbytes(self) -> int:
        return DTYPE_BYTES[self.dtype] * math.prod(self.shape)


def check_safetensors(path: Path) -> dict[str, TensorEntry]:
    """The tensor entries of `path`'s header; PrunesweepError (one line naming the file and the defect) when the
    header is unreadable, an entry is malformed, or the data it points at does not fit the file."""
    size = path.stat().st_size
    header, length = _header(path, size)
    entries: dict[str, TensorEntry] = {}
    for name, entry in header.items():
        if name == METADATA:
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise PrunesweepError(f"model file {path}: {METADATA} is not a map of strings")
            continue
        try:
            entries[name] = TensorEntry.model_validate(entry)
        except ValidationError as exc:
            field, message = first_error(exc)
            raise PrunesweepError(f"model file {path}: tensor {name!r}: field {field!r}: {message}") from None
        start, end = entries[name].data_offsets
        if end - start != entries[name].nbytes():
            raise PrunesweepError(
                f"model file {path}: tensor {name!r}: data_offsets span {end - start} bytes, "
                f"its dtype and shape need {entries[name].nbytes()}"
            )
    _check_layout(path, entries, size - 8 - length)
    return entries


def _header(path: Path, size: int) -> tuple[dict, int]:
    try:
        with path.open("rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(length)) if size >= 8 and 0 < length <= size - 8 else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise PrunesweepError(f"model file {path}: not a safetensors file (unreadable header)")
    return header, length


def _check_layout(path: Path, entries: dict[str, TensorEntry], data_bytes: int) -> None:
    """Entries must not overlap and must end inside the data section."""
    spans = sorted((entry.data_offsets, name) for name, entry in entries.items())
    for ((_, end), name), ((start, _), following) in pairwise(spans):
        if start < end:
            raise PrunesweepError(f"model file {path}: tensors {name!r} and {following!r} overlap")
    needed = max((end for (_, end), _ in spans), default=0)
    if needed > data_bytes:
        size = path.stat().st_size
        raise PrunesweepError(
            f"model file {path}: truncated ({size} bytes, its header needs {size - data_bytes + needed})"
        )
