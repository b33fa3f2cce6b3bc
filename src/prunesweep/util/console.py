"""The console of a run: quiet by default (one progress bar per long stage, warnings that matter, where the
results went: `cli.closing`); lm-eval's and transformers' own logs and bars only with `verbose=true`. The run's log file
(`<run dir>/cli.log`) keeps every INFO line either way."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

# Their INFO and WARNING lines are about lm-eval's own CLI (metadata hints, "pretrained is not a string", ...);
# the one that matters, truncation, is counted and reported by the harness instead.
CHATTY_LOGGERS = ("lm_eval",)


class _Quiet(logging.Filter):
    """Console filter: chatty libraries' records below ERROR are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.split(".")[0] not in CHATTY_LOGGERS


def configure(verbose: bool) -> None:
    """Call before anything imports tqdm: quiet mode disables every progress bar that does not ask for itself
    (`TQDM_DISABLE` sets tqdm's defaults at import), so only `bar(...)`s show."""
    if verbose:
        return
    os.environ.setdefault("TQDM_DISABLE", "1")
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # the console, not the run's log file
            handler.addFilter(_Quiet())
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def bar(iterable: Iterable[Any] | None = None, **kwargs: Any):
    """A progress bar that shows in quiet mode too (one per long stage)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=False, dynamic_ncols=True, **kwargs)
