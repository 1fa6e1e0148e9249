"""Live events as the REST service takes them, and what they change in real time.

`check_events(raw, ...)` checks a batch one event at a time: each bad event gets its own message
(index, field, what to change) and the good ones are kept. An event is an object with ``type``
(view, click, cart, purchase), ``product_id`` (a product of the served catalog), ``session`` or
``user`` (or both), and, when it follows a list the service answered, that answer's ``request_id``
and the product's ``position`` in it (1-based); ``time`` (ISO 8601, default: when it arrived) and
``event_id`` (makes re-sending the batch harmless) are optional.

`LiveView` is what the service serves from them: each session's and user's recent products
(clicks, carts and purchases; a session's recommendations follow them) and live popularity
(each product's activity in the last `window_s`, a view counting 0.25, a click 1, a cart 2 and a
purchase 3). `EventFeed` keeps a `LiveView` fed from the stored events (every `interval_s`), so
every worker of the service sees every worker's events.

>>> view = LiveView()
>>> view.apply([{"id": 1, "type": "click", "product_id": "A", "session": "s1", "user_id": None,
...              "received_at": None}])
>>> view.history("session:s1"), view.trending()
(['A'], {'A': 1.0})
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from db import experiments as store
from db.engine import session_scope
from db.models import LIVE_EVENT_TYPES

logger = logging.getLogger(__name__)
MAX_BATCH = 1000
MAX_ID = 128
FUTURE_SLACK = timedelta(minutes=5)
WEIGHTS = {"view": 0.25, "click": 1.0, "cart": 2.0, "purchase": 3.0}
HISTORY_TYPES = ("click", "cart", "purchase")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_REQUEST_ID = 64
FIELDS = {"type", "product_id", "session", "user", "request_id", "position", "time", "event_id"}


def unit_of(session: str | None, user: str | None) -> str | None:
    """Who an experiment assigns: the session when one is sent, else the user."""
    if session:
        return f"session:{session}"
    return f"user:{user}" if user else None


def _utc_naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def clean_id(value: str | None) -> str | None:
    """An id as the service keeps it: stripped; None when blank."""
    value = None if value is None else value.strip()
    return value or None


def _text(event: dict, name: str, problems: list[str], required: bool = False,
          longest: int = MAX_ID) -> str | None:
    value = event.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
        problems.append(f"{name}: must be a string, not {type(value).__name__}")
        return None
    value = clean_id(None if value is None else str(value))
    if value is None:
        if required:
            problems.append(f"{name}: missing; send the {name.replace('_', ' ')}")
        return None
    if len(value) > longest:
        problems.append(f"{name}: longer than {longest} characters")
        return None
    if CONTROL.search(value):
        problems.append(f"{name}: holds a control character (such as a tab or NUL)")
        return None
    return value


def check_events(raw, known_products: set[str], served: Callable[[list[str]], dict[str, list[str]]],
                 now: datetime | None = None) -> tuple[list[dict], list[dict]]:
    """(rows to store, problems): one problem per bad event, {"index", "event_id", "detail"}.

    `served(request_ids)` gives the products of each request id the service answered (unknown
    ones left out)."""
    if not isinstance(raw, list):
        raise ValueError("the body must be a JSON list of events, e.g. [{\"type\": \"click\", "
                         "\"product_id\": \"A1\", \"session\": \"s-42\"}]")
    if len(raw) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} events, not {len(raw)}: send it in parts")
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    request_ids = sorted({clean_id(str(event["request_id"])) for event in raw
                          if isinstance(event, dict) and isinstance(event.get("request_id"), (str, int))
                          and not isinstance(event.get("request_id"), bool)
                          and 0 < len(str(event["request_id"]).strip()) <= MAX_REQUEST_ID} - {None})
    lists = served(request_ids) if request_ids else {}
    rows, problems = [], []
    for index, event in enumerate(raw):
        if not isinstance(event, dict):
            problems.append({"index": index, "event_id": None,
                             "detail": f"an event is a JSON object, not {type(event).__name__}"})
            continue
        found: list[str] = []
        unknown = sorted(set(event) - FIELDS)
        if unknown:
            found.append(f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(sorted(FIELDS))}")
        kind = event.get("type")
        if kind not in LIVE_EVENT_TYPES:
            found.append(f"type: {kind!r} is not one of {', '.join(LIVE_EVENT_TYPES)}")
        product = _text(event, "product_id", found, required=True)
        if product is not None and product not in known_products:
            found.append(f"product_id: {product!r} is not in the served catalog")
        session, user = _text(event, "session", found), _text(event, "user", found)
        if session is None and user is None and not any(p.startswith(("session", "user")) for p in found):
            found.append("session or user: send at least one, so the event belongs to someone")
        event_id = _text(event, "event_id", found)
        request_id = _text(event, "request_id", found, longest=MAX_REQUEST_ID)
        position = event.get("position")
        if position is not None and (isinstance(position, bool) or not isinstance(position, int)
                                     or position < 1):
            found.append(f"position: {position!r} is not a whole number from 1 (the first item)")
            position = None
        if position is not None and request_id is None:
            found.append("position: given without the request_id of the list it is a position in")
        if request_id is not None:
            products = lists.get(request_id)
            if products is None:
                found.append(f"request_id: {request_id!r} is not an answer of this service")
            elif position is not None and position > len(products):
                found.append(f"position: {position} is past the end of request {request_id}'s "
                             f"{len(products)} item(s)")
            elif position is not None and product is not None and products[position - 1] != product:
                found.append(f"position: item {position} of request {request_id} is "
                             f"{products[position - 1]!r}, not {product!r}")
            elif position is None and product is not None:
                if product not in products:  # a purchase after a list need not be of a listed product
                    if kind == "click":
                        found.append(f"product_id: {product!r} is not in the answer of request {request_id}")
                else:
                    position = products.index(product) + 1  # what the credit of a click goes by
        at = now
        if event.get("time") is not None:
            try:
                at = _utc_naive(datetime.fromisoformat(str(event["time"])))
            except (ValueError, OverflowError):
                found.append(f"time: {event['time']!r} is not an ISO 8601 time such as 2026-11-29T16:05:00Z")
            else:
                if at > now + FUTURE_SLACK:
                    found.append(f"time: {event['time']} is in the future")
        if found:
            problems.append({"index": index, "event_id": event_id, "detail": "; ".join(found)})
            continue
        rows.append({"event_id": event_id, "type": kind, "product_id": product, "session": session,
                     "user_id": user, "request_id": request_id, "position": position, "at": at,
                     "received_at": now})
    return rows, problems


class LiveView:
    """Each session's and user's recent products, and each product's recent activity."""

    def __init__(self, window_s: float = 3600.0, history_length: int = 50, max_units: int = 100_000):
        self.window = timedelta(seconds=window_s)
        self.history_length = history_length
        self.max_units = max_units
        self._histories: OrderedDict[str, deque[str]] = OrderedDict()
        self._recent: deque[tuple[datetime, str, float]] = deque()
        self._activity: dict[str, float] = {}
        self._lock = threading.Lock()

    def apply(self, events: list[dict]) -> None:
        """Take stored events (dicts with type, product_id, session, user_id and received_at: the
        window goes by when the service received an event, not by the client's clock)."""
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with self._lock:
            for event in events:
                kind, product = event["type"], event["product_id"]
                at = min(event.get("received_at") or now, now)
                if kind in HISTORY_TYPES:
                    for unit in (unit_of(event.get("session"), None), unit_of(None, event.get("user_id"))):
                        if unit is not None:
                            self._remember(unit, product)
                if at >= now - self.window:
                    weight = WEIGHTS.get(kind, 0.0)
                    self._recent.append((at, product, weight))
                    self._activity[product] = self._activity.get(product, 0.0) + weight
            self._expire(now)

    def _remember(self, unit: str, product: str) -> None:
        history = self._histories.pop(unit, None) or deque(maxlen=self.history_length)
        if product in history:
            history.remove(product)
        history.append(product)
        self._histories[unit] = history
        while len(self._histories) > self.max_units:
            self._histories.popitem(last=False)

    def _expire(self, now: datetime) -> None:
        # Received times are nearly in order (workers' feeds interleave by a fraction of a second).
        while self._recent and self._recent[0][0] < now - self.window:
            _, product, weight = self._recent.popleft()
            left = self._activity.get(product, 0.0) - weight
            if left <= 1e-9:
                self._activity.pop(product, None)
            else:
                self._activity[product] = left

    def history(self, unit: str | None) -> list[str]:
        """The unit's recent products, oldest first."""
        with self._lock:
            found = self._histories.get(unit) if unit else None
            return list(found) if found else []

    def trending(self) -> dict[str, float]:
        with self._lock:
            self._expire(datetime.now(timezone.utc).replace(tzinfo=None))
            return dict(self._activity)


class EventFeed:
    """A thread that applies the events stored since it last looked to a `LiveView`.

    It follows the table by id. With several workers writing to PostgreSQL, ids are taken when a
    row is inserted but seen when it commits, so a smaller id can appear after a larger one: the
    ids skipped over are looked for again at each step for `gap_s` seconds."""

    def __init__(self, url: str | None, view: LiveView, interval_s: float = 0.25, gap_s: float = 60.0):
        self.url = url
        self.view = view
        self.interval_s = interval_s
        self.gap_s = gap_s
        self.last_id = 0
        self.gaps: dict[int, float] = {}  # id skipped over -> when it was first missed (monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-events-feed", daemon=True)

    def start(self) -> EventFeed:
        """Load the last window's events, then follow new ones."""
        since = datetime.now(timezone.utc).replace(tzinfo=None) - self.view.window
        with session_scope(self.url) as session:
            self.last_id = store.first_event_id_since(session, since) - 1
        while self.step():  # page by page up to now
            pass
        self.gaps.clear()
        self._thread.start()
        return self

    def step(self) -> int:
        """Apply the events stored since the last step; how many there were."""
        now = time.monotonic()
        self.gaps = {id_: seen for id_, seen in self.gaps.items() if now - seen < self.gap_s}
        with session_scope(self.url) as session:
            events = [_plain(event) for event in store.events_after(session, self.last_id)]
            late = ([_plain(event) for event in store.events_by_id(session, list(self.gaps))]
                    if self.gaps else [])
        for event in late:
            self.gaps.pop(event["id"], None)
        expected = self.last_id + 1
        for event in events:
            self.gaps.update({missing: now for missing in range(expected, event["id"])})
            expected = event["id"] + 1
        if events:
            self.last_id = events[-1]["id"]
        self.view.apply(late + events)
        return len(events)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the next step tries again
                logger.exception("could not read new live events")
                time.sleep(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _plain(event) -> dict:
    return {"id": event.id, "type": event.type, "product_id": event.product_id, "session": event.session,
            "user_id": event.user_id, "at": event.at, "received_at": event.received_at}
