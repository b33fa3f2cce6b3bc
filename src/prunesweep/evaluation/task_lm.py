"""lm-eval's HFLM, reporting one task at a time: a progress bar over the task's requests, and which of its
examples were truncated (lm-eval cuts an input longer than `max_length` from the left, with only a warning);
its loglikelihood batches are capped in tokens, not only in requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import CacheHook
from lm_eval.models.huggingface import HFLM

from prunesweep.models.dispatch import input_device
from prunesweep.util.console import bar


class _Progress(CacheHook):
    """lm-eval reports every answered request to its cache hook (once per request, of any type): count them."""

    def __init__(self, progress: Any) -> None:
        super().__init__(None)
        self.progress = progress

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        self.progress.update(1)


class TaskLM(HFLM):
    """`with lm.task(name) as truncated:` around one task's `simple_evaluate`; `truncated` then holds the doc
    ids of the examples whose input did not fit. lm-eval's own request bars show only when `verbose`."""

    def __init__(self, *args: Any, batch_tokens: int | None = None, verbose: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._device = input_device(self._model)  # HFLM takes the first weight's: meta under accelerate's hooks
        self.batch_tokens = batch_tokens
        self.verbose = verbose
        self.truncated: set[int] = set()
        self._docs: dict[tuple, set[int]] = {}  # loglikelihood request (context, continuation) -> doc ids
        self._bar: Any = None
        self._name: str | None = None  # the task being evaluated

    @contextmanager
    def task(self, name: str) -> Iterator[set[int]]:
        self.truncated, self._docs, self._name = set(), {}, name
        try:
            yield self.truncated
        finally:
            if self._bar is not None:
                self._bar.close()
            self.set_cache_hook(CacheHook(None))
            self._bar = self._name = None

    def _requests(self, requests: list[Instance], disable_tqdm: bool) -> bool:
        """Open the task's bar once its requests are known; lm-eval's own bars stay off unless verbose."""
        if self._name is not None:
            self._bar = bar(total=len(requests), desc=f"eval {self._name}", unit="req")
            self.set_cache_hook(_Progress(self._bar))
        return disable_tqdm or not self.verbose

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        for request in requests:
            self._docs.setdefault(tuple(request.args), set()).add(request.doc_id)
        return super().loglikelihood(requests, disable_tqdm=self._requests(requests, disable_tqdm))

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Rolling windows cover the whole document: nothing is truncated."""
        return super().loglikelihood_rolling(requests, disable_tqdm=self._requests(requests, disable_tqdm))

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """The context keeps its last `max_length - max_gen_toks` tokens."""
        for request in requests:
            context, gen_kwargs = request.args
            room = self.max_length - int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
            if len(self.tok_encode(context)) > room:
                self.truncated.add(request.doc_id)
        return super().generate_until(requests, disable_tqdm=self._requests(requests, disable_tqdm))

    def _loglikelihood_tokens(self, requests: list, disable_tqdm: bool = False, override_bs: int | None = None):
        """The encoded requests, as lm-eval truncates them: context + continuation longer than max_length + 1."""
        for key, context, continuation in requests:
            if key is not None and len(context) + len(continuation) > self.max_length + 1:
                self.truncated.update(self._docs.get(tuple(key), ()))
        requested = self.batch_size_per_gpu
        self.batch_size_per_gpu = self._batch_for(requests)
        try:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        finally:
            self.batch_size_per_gpu = requested

    def _batch_for(self, requests: list) -> int:
        """The requests per batch that keep the longest input (as lm-eval feeds it) within `batch_tokens`.
        HFLM takes one fixed batch size (or a CUDA out-of-memory probe for "auto"), so it is set per call."""
        if self.batch_tokens is None or not requests:
            return self.batch_size_per_gpu
        longest = max(
            min(len(context) + len(continuation), self.max_length + 1) - 1 for _, context, continuation in requests
        )
        return max(1, min(self.batch_size_per_gpu, self.batch_tokens // max(1, longest)))
