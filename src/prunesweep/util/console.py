"""The console of a run: quiet by default (one progress bar per long stage, warnings that matter, where the
results went: `cli.closing`); lm-eval's and transformers' own logs and bars only with `verbose=true`. The run's log file
(`<run dir>/main.log`) keeps every INFO line either way.

Log lines go through tqdm, so an open bar is cleared first and redrawn below: a bar and a log line never share a
line. In a sweep every console line names its cell (`[<cell folder>] ...`). In a parallel one (joblib, submitit
local: several cells on one terminal), and wherever the console is not a terminal (output redirected to a file), a
bar prints whole lines of its own instead of redrawing: its final state when it closes, and its progress every
`PARALLEL_BAR_SECONDS` in between."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

# Their INFO and WARNING lines are about lm-eval's own CLI (metadata hints, "pretrained is not a string", ...);
# the one that matters, truncation, is counted and reported by the harness instead.
CHATTY_LOGGERS = ("lm_eval",)
PARALLEL_BAR_SECONDS = 30.0  # how often a bar of a parallel cell prints its line

_prefix = ""  # `[<cell>] ` in a sweep
_parallel = False


class _Quiet(logging.Filter):
    """Console filter: chatty libraries' records below ERROR are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.split(".")[0] not in CHATTY_LOGGERS


class _Console(logging.StreamHandler):
    """The console handler: every line of a record after the cell's prefix, written through `tqdm.write`."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            text = "\n".join(_prefix + line for line in self.format(record).splitlines())
            tqdm.write(text, file=self.stream)
        except Exception:
            self.handleError(record)


class _Lines:
    """A bar's stream in a parallel sweep or a file: each update is a whole line (no `\\r` redraws that another cell's
    output would cut into). The bar's opening draw (nothing done yet) and tqdm's clearing writes, all blanks, are
    dropped, so a bar that ends within its refresh interval is one line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.opened = stream, False

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text and self.opened:
            self.stream.write(text + "\n")
        self.opened = self.opened or bool(text)

    def flush(self) -> None:
        self.stream.flush()


def configure(verbose: bool, cell: str | None = None, parallel: bool = False) -> None:
    """Call before anything imports tqdm: quiet mode disables every progress bar that does not ask for itself
    (`TQDM_DISABLE` sets tqdm's defaults at import), so only `bar(...)`s show. `cell`: the sweep cell whose lines
    these are; `parallel`: other cells write to the same terminal."""
    global _prefix, _parallel
    _prefix, _parallel = (f"[{cell}] " if cell else ""), parallel
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:  # the console, not the run's log file
            console = _Console(handler.stream)
            console.setLevel(handler.level)
            console.setFormatter(handler.formatter)
            for kept in [*handler.filters, *([] if verbose else [_Quiet()])]:
                console.addFilter(kept)
            root.removeHandler(handler)
            root.addHandler(console)
    if verbose:
        return
    os.environ.setdefault("TQDM_DISABLE", "1")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def bar(iterable: Iterable[Any] | None = None, **kwargs: Any):
    """A progress bar that shows in quiet mode too (one per long stage), named after the cell in a sweep."""
    from tqdm.auto import tqdm

    kwargs["desc"] = _prefix + kwargs.get("desc", "")
    stream = kwargs.get("file") or sys.stderr
    if _parallel or not stream.isatty():  # a shared terminal, or a file (a redirected log): no `\r` redraws
        kwargs.update(file=_Lines(stream), ncols=100, mininterval=PARALLEL_BAR_SECONDS, leave=True)
    else:
        kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=False, **kwargs)
