"""Peak memory of one stage of a run: the process's resident set and, where there is one, the accelerator's
allocated memory (torch's peak statistics).

The kernel's high-water mark (`VmHWM`) is never reset: resetting it (`/proc/self/clear_refs`) would also erase the
process's maximum resident set that `/usr/bin/time -v` and `getrusage` report. A stage that raises the process's
high-water mark gets that exact figure; any other stage gets the most resident memory a sampling thread saw
(every `SAMPLE_SECONDS`), which can miss a spike shorter than the interval, never exceeding the true peak."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

STATUS, STATM = Path("/proc/self/status"), Path("/proc/self/statm")
# a stage's figures: `<stage><field>`
RSS_FIELD, ANON_FIELD, ACCELERATOR_FIELD = "_peak_rss_bytes", "_peak_anon_bytes", "_peak_accelerator_bytes"
PEAK_FIELDS = (RSS_FIELD, ANON_FIELD, ACCELERATOR_FIELD)
SAMPLE_SECONDS = 0.005
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc's `malloc_trim`; elsewhere nothing). Tensors below
    glibc's mmap threshold (32 MiB at most) live on the heap, and the pages freed between live ones stay resident
    until trimmed: without it, a loop that frees and re-allocates one layer's temporaries grows by tens of MiB a
    layer."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, looked up once (`find_library` runs `ldconfig`); None elsewhere."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def _high_water_bytes() -> int | None:
    """The process's peak resident set so far (`VmHWM`); None where /proc cannot tell."""
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in lines if line.startswith("VmHWM:")), None)
    return None if kib is None else kib * 1024


def _resident_bytes() -> tuple[int, int]:
    """The process's resident set now and its anonymous part: `/proc/self/statm`'s resident pages, less its shared
    (file-backed) ones, such as memory-mapped weight files the kernel can drop and read again."""
    _, resident, shared = STATM.read_text().split()[:3]
    return int(resident) * PAGE_BYTES, (int(resident) - int(shared)) * PAGE_BYTES


class _Sampler(threading.Thread):
    """Reads the resident set every `SAMPLE_SECONDS` until stopped, keeping the largest (whole and anonymous)."""

    def __init__(self) -> None:
        super().__init__(name="prunesweep-rss-sampler", daemon=True)
        self.peak, self.anon_peak = _resident_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        resident, anon = _resident_bytes()
        self.peak, self.anon_peak = max(self.peak, resident), max(self.anon_peak, anon)

    def stop(self) -> tuple[int, int]:
        self._stop_event.set()
        self.join()
        self._sample()
        return self.peak, self.anon_peak


@contextmanager
def stage_peak(stage: str) -> Iterator[dict[str, int]]:
    """Measure the block; the yielded dict is filled on exit with `<stage>_peak_rss_bytes` (the most resident
    memory at any moment of the block, what was resident before included), `<stage>_peak_anon_bytes` (the most
    anonymous memory the sampler saw: the resident set less mapped files) and, on CUDA,
    `<stage>_peak_accelerator_bytes`. Fields that cannot be measured here are left out. Blocks must not nest: the
    accelerator's peak statistics are process-wide."""
    figures: dict[str, int] = {}
    high_water = _high_water_bytes()
    sampler = _Sampler() if high_water is not None else None
    if sampler is not None:
        sampler.start()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        yield figures
    finally:
        if sampler is not None:
            (sampled, anon), raised = sampler.stop(), _high_water_bytes()
            exact = raised is not None and raised > high_water
            figures[stage + RSS_FIELD] = raised if exact else sampled
            figures[stage + ANON_FIELD] = anon
        if cuda:
            figures[stage + ACCELERATOR_FIELD] = torch.cuda.max_memory_allocated()
