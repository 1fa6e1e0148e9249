"""Request metrics (and served lists, live events) written to SQL in batches, off the request path.

A request only appends its row (a dict keyed by `db.models.RequestMetric`
columns) to an in-memory queue: `record` never waits for the database and
never raises. A background thread drains the queue every `interval_s` seconds,
or as soon as `batch_rows` rows wait, and inserts them in one statement with
`db.monitoring.insert_request_metrics`. When the database fails, the batch is
kept and tried again (backing off up to `max_backoff_s`); only when more than
`max_pending` rows wait are the oldest dropped, and counted in `dropped`. A batch the database
refuses for its content (a value too long, say) is written row by row, and a row refused alone is
logged and counted in `refused`, so one bad row never holds back the rest.
`close()` stops the thread and writes what is left, so a shutdown loses nothing
while the database is up.

The same writer stores other rows with another `insert` (the served lists and live events of
`db.experiments`). Rows that must not be dropped (events a client sent) go through `offer`,
which takes a whole batch or, when it would not fit under `max_pending`, none of it (the service
answers 429 and the client sends it again).

    writer = MetricsWriter(url, interval_s=0.5).start()
    writer.record({"at": now, "endpoint": "search", "status": 200, "latency_ms": 12.5})
    writer.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from db.engine import session_scope
from db.monitoring import insert_request_metrics

logger = logging.getLogger(__name__)


class MetricsWriter:
    """A queue of request-metric rows and the thread that writes them (see the module docstring)."""

    def __init__(self, url: str | None = None, *, interval_s: float = 0.5, batch_rows: int = 500,
                 max_pending: int = 200_000, max_backoff_s: float = 30.0,
                 insert: Callable[[Session, list[dict]], int] = insert_request_metrics,
                 what: str = "request metrics"):
        self.url = url
        self.insert = insert
        self.what = what
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
        self._offer_lock = threading.Lock()
        self._in_flight = 0  # rows taken off the queue and being written (they go back on failure)
        self.written = 0
        self.dropped = 0
        self.refused = 0  # rows the database refused on their own (logged)
        self.failed_batches = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> MetricsWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.what} writer".replace(" ", "-"),
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

    def offer(self, rows: list[dict]) -> bool:
        """Queue all of `rows`, or none of them when they would not fit (False); never drops."""
        with self._offer_lock:
            if len(self._queue) + self._in_flight + len(rows) > self.max_pending:
                return False
            self._queue.extend(rows)
        if len(self._queue) >= self.batch_rows:
            self._wake.set()
        return True

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
                with self._offer_lock:
                    batch = [self._queue.popleft() for _ in range(min(self.batch_rows, len(self._queue)))]
                    self._in_flight = len(batch)
                try:
                    with session_scope(self.url) as session:
                        self.insert(session, batch)
                except (DataError, IntegrityError):  # a row the database refuses, not a database that is down
                    self._write_one_by_one(batch)
                    continue
                except Exception:  # noqa: BLE001 - any failure: keep the rows, retry later
                    self.failed_batches += 1
                    logger.exception("could not write %d %s; will retry", len(batch), self.what)
                    with self._offer_lock:
                        self._queue.extendleft(reversed(batch))
                        self._in_flight = 0
                    overflow = len(self._queue) - self.max_pending
                    if overflow > 0:
                        self._drop(overflow)
                    return False
                self._in_flight = 0
                self.written += len(batch)
        return True

    def _write_one_by_one(self, batch: list[dict]) -> None:
        """Write a refused batch row by row, so that one bad row does not hold back the others;
        the rows the database refuses alone are logged with their content and counted in `refused`."""
        for row in batch:
            try:
                with session_scope(self.url) as session:
                    self.insert(session, [row])
            except (DataError, IntegrityError):
                self.refused += 1
                logger.error("the database refused one of the %s and it is left out: %r", self.what, row)
            except Exception:  # noqa: BLE001 - the database went away meanwhile: keep the row for later
                with self._offer_lock:
                    self._queue.appendleft(row)
            else:
                self.written += 1
        with self._offer_lock:
            self._in_flight = 0

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
            logger.error("%d %s could not be written at shutdown", len(self._queue), self.what)
