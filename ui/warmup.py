"""Warm the server up in the background when it starts, so that no visitor pays for lazy loading.

The first page to touch the embedding model imported torch, transformers and onnxruntime
(about 5 s on the 2-core machine) and the first search loaded the ONNX session (about 2 s).
Right after start-up a daemon thread loads the active fitted engines into the pages' cache,
encodes one query, and reads the Data page's overview; a page that needs the same thing meanwhile
waits for it instead of doing it twice (imports and Streamlit's caches are locked per key). A
failure here is logged and changes nothing: the pages load what they need themselves.

Python runs one thread at a time, so a step of the warm-up slows a page drawn meanwhile (the
first pages after logging in took 3 s instead of 1). What the Data page needs (the page most
visit first) it does at once, while the visitor is on the login form; before each engine it
waits until no page has been drawn for `QUIET_S` (`drawing` is around every run of app.py).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from contextlib import contextmanager

THREAD_NAME = "workbench-warm-up"
log = logging.getLogger(__name__)
_runs = 0  # script runs in progress
_last_run_end = 0.0  # time.monotonic() of the last one's end
QUIET_S = 0.5  # a step starts after this long without a run: a visitor clicking on is not in its way
_runs_lock = threading.Lock()
_idle = threading.Condition(_runs_lock)


@contextmanager
def drawing():
    """Around a script run: the warm-up does not start a step while one is in progress."""
    global _runs, _last_run_end
    with _runs_lock:
        _runs += 1
    try:
        yield
    finally:
        with _runs_lock:
            _runs -= 1
            _last_run_end = time.monotonic()
            _idle.notify_all()


def _when_idle(timeout: float = 10.0) -> None:
    """Wait until no script run has been in progress for `QUIET_S` (at most `timeout` s in all, so a
    busy server still warms up)."""
    deadline = time.monotonic() + timeout
    with _runs_lock:
        while time.monotonic() < deadline:
            quiet = time.monotonic() - _last_run_end
            if _runs == 0 and quiet >= QUIET_S:
                return
            _idle.wait(timeout=max(QUIET_S - quiet, 0.05) if _runs == 0 else deadline - time.monotonic())


class _OwnThreadOnly(logging.Filter):
    """Drops Streamlit's "missing ScriptRunContext" warnings raised by the warm-up thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD_NAME


def enabled() -> bool:
    """``$WORKBENCH_WARM_UP`` is not "0" (the test suite turns it off; its pages load what they need)."""
    return os.environ.get("WORKBENCH_WARM_UP", "1").strip() != "0"


def start(url: str) -> threading.Thread | None:
    """Start warming up the server for the database `url` (once per server: see `ui.session.bootstrap`)."""
    if not enabled():
        return None
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_OwnThreadOnly())
    logging.getLogger("streamlit.runtime.caching.cache_data_api").addFilter(_OwnThreadOnly())
    thread = threading.Thread(target=_warm, args=(url,), name=THREAD_NAME, daemon=True)
    thread.start()
    return thread


def _warm(url: str) -> None:
    started = time.perf_counter()
    try:
        # What the Data page needs, at once: the first visitor is still on the login form.
        import plotly.express  # noqa: F401  (every chart's first draw imports it)

        from recsys import engines as store
        from ui import charts, data, upload, versions  # noqa: F401  (the Data page's own modules)
        from ui.engines import _load

        active = data.active_versions(url)
        if "events" in active:
            data.overview(url, active["events"]["id"], active.get("catalog", {}).get("id"))
        # The engines, each when no page is being drawn.
        for spec in store.active_specs(url).values():
            if store.is_fitted(spec):
                _when_idle()
                engine = _load(spec.key, spec)
                if spec.kind == "search":
                    _when_idle()
                    engine.candidates(["warm up"])  # loads the query encoder
    except Exception:  # the pages load what they need themselves
        log.warning("warming the server up failed", exc_info=True)
        return
    print(f"Warmed up in {time.perf_counter() - started:.1f} s: engines loaded, query encoder ready.",
          file=sys.stderr, flush=True)
