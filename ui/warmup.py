"""Warm the server up in the background when it starts, so that no visitor pays for lazy loading.

The first page to touch the embedding model imported torch, transformers and onnxruntime
(about 5 s on the 2-core machine) and the first search loaded the ONNX session (about 2 s).
Right after start-up a daemon thread loads the active fitted engines into the pages' cache,
encodes one query, and reads the Data page's overview; a page that needs the same thing meanwhile
waits for it instead of doing it twice (imports and Streamlit's caches are locked per key). A
failure here is logged and changes nothing: the pages load what they need themselves.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

THREAD_NAME = "workbench-warm-up"
log = logging.getLogger(__name__)


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
        from recsys import engines as store
        from ui import data
        from ui.engines import _load

        import plotly.express  # noqa: F401  (every chart's first draw imports it)

        active = data.active_versions(url)
        if "events" in active:  # the Data page, the first one most visit, first
            data.overview(url, active["events"]["id"], active.get("catalog", {}).get("id"))
        for spec in store.active_specs(url).values():
            if store.is_fitted(spec):
                engine = _load(spec.key, spec)
                if spec.kind == "search":
                    engine.candidates(["warm up"])  # loads the query encoder
    except Exception:  # the pages load what they need themselves
        log.warning("warming the server up failed", exc_info=True)
        return
    print(f"Warmed up in {time.perf_counter() - started:.1f} s: engines loaded, query encoder ready.",
          file=sys.stderr, flush=True)
