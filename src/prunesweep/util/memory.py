"""Peak memory of one stage of a run: the process's resident set (Linux `VmHWM`, reset through
`/proc/self/clear_refs`, the kernel's own high-water mark, so no sampling thread is needed) and, where there is one,
the accelerator's allocated memory (torch's peak statistics)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")
RSS_FIELD, ACCELERATOR_FIELD = "_peak_rss_bytes", "_peak_accelerator_bytes"  # a stage's figures: `<stage><field>`
PEAK_FIELDS = (RSS_FIELD, ACCELERATOR_FIELD)
RESET_PEAK_RSS = "5"  # proc(5): writing 5 to clear_refs resets the peak resident set size to the current one


def _reset_peak_rss() -> bool:
    try:
        CLEAR_REFS.write_text(RESET_PEAK_RSS)
    except OSError:  # not Linux, or /proc is read-only here: no per-stage figure
        return False
    return True


def _peak_rss_bytes() -> int | None:
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in lines if line.startswith("VmHWM:")), None)
    return None if kib is None else kib * 1024


@contextmanager
def stage_peak(stage: str) -> Iterator[dict[str, int]]:
    """Measure the block; the yielded dict is filled on exit with `<stage>_peak_rss_bytes` (the most resident
    memory at any moment of the block, what was resident before included) and, on CUDA,
    `<stage>_peak_accelerator_bytes`. Fields that cannot be measured here are left out. Blocks must not nest: each
    one resets the process-wide peak."""
    figures: dict[str, int] = {}
    rss = _reset_peak_rss()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        yield figures
    finally:
        peak = _peak_rss_bytes() if rss else None
        if peak is not None:
            figures[stage + RSS_FIELD] = peak
        if cuda:
            figures[stage + ACCELERATOR_FIELD] = torch.cuda.max_memory_allocated()
