"""Request metrics written to SQL in batches, off the request path.

A request only appends its row (a dict keyed by `db.models.RequestMetric`
columns) to an in-memory queue: `record` never waits for the database and
never raises. A background thread drains the queue every `interval_s` seconds,
or as soon as `batch_rows` rows wait, and inserts them in one statement with
`db.monitoring.insert_request_metrics`. When the database fails, the batch is
kept and tried again (backing off up to `max_backoff_s`); only when more than
`max_pending` rows wait are the oldest dropped, and counted in `dropped`.
`close()` stops the thread and writes what is left, so a shutdown loses nothing
while the database is up.

    writer = MetricsWriter(url, interval_s=0.5).start()
    writer.record({"at": now, "endpoint": "search", "status": 200, "latency_ms": 12.5})
    writer.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from db.engine import session_scope
from db.monitoring import insert_request_metrics

logger = logging.getLogger(__name__)


class MetricsWriter:
    """A queue of request-metric rows and the thread that writes them (see the module docstring)."""

    def __init__(self, url: str | None = None, *, interval_s: float = 0.5, batch_rows: int = 500,
                 max_pending: int = 200_000, max_backoff_s: float = 30.0):
        self.url = url
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self.max_pending = max_pending
        self.max_backoff_s = max_backoff_s
        # deque.append and popleft are atomic: request threads and the writer share no lock.
        self._queue: deque[dict] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.failed_batches = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> MetricsWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="request-metrics-writer",
                                            daemon=True)
            self._thread.start()
        return self

    def record(self, row: dict) -> None:
        """Queue one row; never blocks, never raises."""
        self._queue.append(row)
        overflow = len(self._queue) - self.max_pending
        if overflow > 0:
            self._drop(overflow)
        if len(self._queue) >= self.batch_rows:
            self._wake.set()

    def _drop(self, count: int) -> None:
        for _ in range(count):
            try:
                self._queue.popleft()
            except IndexError:
                return
            self.dropped += 1

    def flush(self) -> bool:
        """Write every queued row now; False when the database refused a batch (rows kept)."""
        with self._write_lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.batch_rows, len(self._queue)))]
                try:
                    with session_scope(self.url) as session:
                        insert_request_metrics(session, batch)
                except Exception:  # noqa: BLE001 - any failure: keep the rows, retry later
                    self.failed_batches += 1
                    logger.exception("could not write %d request metrics; will retry", len(batch))
                    self._queue.extendleft(reversed(batch))
                    overflow = len(self._queue) - self.max_pending
                    if overflow > 0:
                        self._drop(overflow)
                    return False
                self.written += len(batch)
        return True

    def _run(self) -> None:
        backoff = self.interval_s
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = self.interval_s if self.flush() else min(backoff * 2, self.max_backoff_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and write what is left (retrying for up to `timeout_s`)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        deadline = time.monotonic() + timeout_s
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._queue:
            logger.error("%d request metrics could not be written at shutdown", len(self._queue))
