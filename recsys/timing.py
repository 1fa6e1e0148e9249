"""Per-stage timing of one request, without passing a timer through every call.

The serving layer opens a `StageTimer` around a request; code deep inside the
library (the encoder, a retriever, the fuser, the rules) marks its work with
``with stage("encode"):``. Outside a timer, `stage` costs one context-variable
lookup and records nothing. The active timer lives in a `contextvars.ContextVar`,
so concurrent requests in threads or asyncio tasks never mix their timings.

Stage names used across the workbench: "encode", "retrieve", "fuse", "rules", "rerank".
Times are exclusive: a stage opened inside another (the encoder inside a
retriever) is taken out of the outer one, so the stages of a request add up to
no more than its total.

>>> with StageTimer() as timer:
...     with stage("fuse"):
...         _ = sum(range(1000))
>>> sorted(timer.ms)
['fuse']
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_current: contextvars.ContextVar[StageTimer | None] = contextvars.ContextVar("stage_timer", default=None)


class StageTimer:
    """Milliseconds spent in each named stage while the timer is active (a context manager)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._token: contextvars.Token | None = None
        self._inner: list[float] = []  # per open stage: time spent in stages nested inside it

    def add(self, name: str, milliseconds: float) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + milliseconds

    def __enter__(self) -> StageTimer:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the time spent inside this block to stage `name` of the active timer, if any.

    A stage nested in another counts only in the inner one.
    """
    timer = _current.get()
    if timer is None:
        yield
        return
    start = time.perf_counter()
    timer._inner.append(0.0)
    try:
        yield
    finally:
        elapsed = (time.perf_counter() - start) * 1000
        nested = timer._inner.pop()
        timer.add(name, elapsed - nested)
        if timer._inner:
            timer._inner[-1] += elapsed
