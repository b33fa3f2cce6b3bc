"""Which of this process's memory is mapped from files: to tell memory-mapped weights from anonymous copies."""

from __future__ import annotations

from pathlib import Path

import torch


def mapped_ranges(folder: Path) -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of files inside `folder`."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(str(folder)):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def unmapped(tensors: dict[str, torch.Tensor], folder: Path) -> list[str]:
    """The names of `tensors` whose data is not in a mapping of a file inside `folder`."""
    ranges = mapped_ranges(folder)
    return [name for name, t in tensors.items() if not any(start <= t.data_ptr() < end for start, end in ranges)]
