"""What the REST and gRPC services share: the calls' parameters and limits, the key check, and
`Service`, which answers a search, recommendations or similar items, remembers the list for the
events that follow, and records the request's metrics.

`recsys.serving.app` (FastAPI) and `recsys.serving.grpc_service` (gRPC) are two front ends of
this one core: both check a call's parameters with the same models (`SearchParameters`,
`RecommendParameters`, `SimilarParameters`; the same limits, the same messages), check keys with
`Service.check_key`, answer through `Service.search`, `Service.recommend` and `Service.similar`
(online experiments, live events, the served-lists record included), and write one
`request_metrics` row per call with `Service.record`, named by the process's replica
(`replica_name`: several service processes behind a load balancer share one database and tell
their rows apart by it). `running_service` starts and stops what a
service process runs beside its front end: the engine (followed, `recsys.serving.follow`), the key
verifier, the writers, the live view of events and the alert scheduler.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from db import experiments as experiment_store
from db.engine import database_url, session_scope
from recsys.ads.campaigns import charge_click
from recsys.ads.serving import AdServer
from recsys.alerts import AlertScheduler
from recsys.embedding_model import configure_this_thread
from recsys.experiments.live import CONTROL, EventFeed, LiveView, check_events, clean_id, unit_of
from recsys.privacy.masking import mask_query
from recsys.privacy.pseudonyms import pseudonymiser
from recsys.serving.engine import Answer, ServingEngine
from recsys.serving.follow import Follower
from recsys.serving.keys import KeyVerifier
from recsys.serving.metrics import MetricsWriter

logger = logging.getLogger(__name__)
MAX_K = 100
MAX_HISTORY = 200
MAX_QUERY = 500  # characters of a search query
MAX_ID = 128  # characters of a user, product, session or category id
API_ENDPOINTS = ("/search", "/recommend", "/similar", "/events")  # recorded in request_metrics
LISTS = ("/search", "/recommend", "/similar")  # their answers are remembered for the events that follow
RECENT_LISTS = 100_000  # answers remembered in memory (older ones are read from SQL)
STAGES = ("encode", "retrieve", "fuse", "rules", "rerank")
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # ids are stored in SQL: no tabs, newlines or NULs
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5)
KEY_HEADER = "X-API-Key"
REPLICA_ENV = "WORKBENCH_REPLICA"
MAX_REPLICA = 128  # characters of a replica's name (request_metrics.replica)
REPLICA_NAME = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")


def replica_name(port: int | None = None) -> str:
    """This service process's name in the request metrics and /health: ``$WORKBENCH_REPLICA``, or
    the machine's host name and the port (``web-2:8000``), or the host name alone without a port.

    Name replicas after machines and ports, never after people: the name is stored with every
    request. ValueError for a name that is not 1 to 128 letters, digits and ``. _ : - [ ]``.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"WORKBENCH_REPLICA": "web-2:8000"}):
    ...     replica_name(8001)
    'web-2:8000'
    """
    name = os.environ.get(REPLICA_ENV, "").strip()
    if not name:
        host = socket.gethostname() or "localhost"
        name = host if port is None else f"{host}:{port}"
    if len(name) > MAX_REPLICA or not REPLICA_NAME.match(name):
        raise ValueError(f"{REPLICA_ENV}={name!r} is not a replica name: use 1 to {MAX_REPLICA} letters, "
                         "digits and . _ : - [ ], e.g. web-2:8000")
    return name


# --- the calls' parameters ---------------------------------------------------------------------
# REST declares the same limits on its query parameters (recsys.serving.app) and pydantic checks
# both, so a bad parameter gets the same message from either protocol (tests/serving/test_grpc.py).

K = Annotated[int, Field(ge=1, le=MAX_K, description=f"how many items, 1 to {MAX_K}")]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]  # REST: a path segment, never empty
OptionalId = Annotated[str | None, Field(max_length=MAX_ID, pattern=NO_CONTROL)]


class SearchParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: Annotated[str, Field(max_length=MAX_QUERY, pattern=r"\S")]
    k: K = 10
    explain: bool = False
    category: Annotated[str | None, Field(max_length=MAX_ID)] = None
    session: OptionalId = None
    user: OptionalId = None


class RecommendParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Id
    k: K = 10
    history: Annotated[list[str], Field(max_length=MAX_HISTORY)] = []
    session: OptionalId = None
    explain: bool = False


class SimilarParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: Id
    k: K = 10


def problems(errors: list[dict], skip: int = 0) -> str:
    """One message for pydantic's `errors`, e.g. "k: Input should be less than or equal to 100";
    `skip`: leading parts of each location to leave out (REST's "query" or "path")."""
    messages = []
    for problem in errors:
        where = ".".join(str(part) for part in problem.get("loc", ())[skip:]) or "request"
        messages.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(messages)


class InvalidParameters(ValueError):
    """A call's parameters broke a limit; the message says which and how (REST 422, gRPC
    INVALID_ARGUMENT)."""


def check(model: type[BaseModel], **values) -> BaseModel:
    """`model` of `values`, or InvalidParameters with `problems`' message."""
    try:
        return model(**values)
    except ValidationError as error:
        raise InvalidParameters(problems(error.errors())) from None


class KeyRejected(PermissionError):
    """A call without a key, or with one that is unknown or revoked (REST 401, gRPC UNAUTHENTICATED)."""


# --- Prometheus ----------------------------------------------------------------------------

class PrometheusMetrics:
    """The service's own registry, so that several apps in one process (tests) do not clash."""
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("recsys_requests", "API requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("recsys_request_latency_seconds", "Total latency of API requests",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.stage_latency = Histogram("recsys_stage_latency_seconds", "Latency of request stages",
                                       ["endpoint", "stage"], buckets=LATENCY_BUCKETS,
                                       registry=self.registry)
        self.results = Histogram("recsys_result_count", "Items per successful answer", ["endpoint"],
                                 buckets=(0, 1, 5, 10, 20, 50, 100), registry=self.registry)
        self.pending = Gauge("recsys_metrics_pending", "Request-metric rows waiting for SQL",
                             registry=self.registry)
        self.dropped = Gauge("recsys_metrics_dropped", "Request-metric rows dropped (database down)",
                             registry=self.registry)


LANES = ("search", "recommend")


class Service:
    """What the endpoints share: the engine, the key verifier, the writers, the live view of events."""
    def __init__(self, engine: ServingEngine, verifier: KeyVerifier, writer: MetricsWriter,
                 compute_threads: int, url: str | None = None, max_pending_events: int = 100_000,
                 events_interval_s: float = 0.2, replica: str | None = None):
        self.engine = engine
        self.url = url
        self.replica = replica or replica_name()  # recorded with each request's metrics
        self.follower = None  # recsys.serving.follow.Follower, when activations are followed
        self.verifier = verifier
        self.writer = writer
        self.served_writer = MetricsWriter(url, interval_s=events_interval_s, what="served lists",
                                           insert=experiment_store.insert_served)
        self.event_writer = MetricsWriter(url, interval_s=events_interval_s, what="live events",
                                          insert=experiment_store.insert_events,
                                          max_pending=max_pending_events)
        self.live = LiveView()
        self.ads = AdServer(url)  # fills the sponsored slots the active presets name
        self.feed: EventFeed | None = None
        self.recent_lists: OrderedDict[str, list[str]] = OrderedDict()  # request id -> products served
        self.recent_event_ids: OrderedDict[str, None] = OrderedDict()
        self._recent_lock = threading.Lock()  # the event loop and event threads share the two above
        self.prometheus = PrometheusMetrics()
        # CapacityLimiters of their own, one per lane: model work never waits behind other
        # thread-pool jobs, and a cheap recommendation never queues behind searches.
        self.limiters = ({lane: anyio.CapacityLimiter(compute_threads) for lane in LANES}
                         if compute_threads > 0 else None)
        self.alerts = None
        # Customer ids are pseudonymised as they arrive (recsys.privacy): nothing the service keeps,
        # logs, fits or answers holds the shop's id; the key is read (or made) once, here.
        self.pseudonymise = pseudonymiser()

    def customer(self, user: str | None) -> str | None:
        """The pseudonym of a customer id sent by a caller (None for None)."""
        return None if user is None else self.pseudonymise(user)

    @property
    def engine(self) -> ServingEngine:
        """The engine serving now; a request takes it once, so one engine answers it."""
        return self._engine

    @engine.setter
    def engine(self, engine: ServingEngine) -> None:
        # One assignment: requests started before keep the engine they took.
        self._engine, self.served_since = engine, datetime.now(timezone.utc)

    async def compute(self, function: Callable[[], Answer], lane: str = "search") -> Answer:
        if self.limiters is None:
            return function()

        def in_configured_thread() -> Answer:
            configure_this_thread()  # OpenMP counts threads per thread: a new one takes every core
            return function()

        return await anyio.to_thread.run_sync(in_configured_thread, limiter=self.limiters[lane])

    # --- the calls both protocols answer ----------------------------------------------------
    # `state`: the request's metrics (`record`), with its "request_id"; each call notes in it the key,
    # the stages, the result count and the versions that answered.

    def check_key(self, key: str | None, state: dict, where: str = f"the {KEY_HEADER} header") -> int:
        """The id of the active key `key` (noted in `state`); KeyRejected for none or a bad one."""
        if not key:
            raise KeyRejected(f"this endpoint needs an API key in {where}")
        key_id = self.verifier.verify(key)
        if key_id is None:
            raise KeyRejected("the API key is not valid: it is unknown or was revoked")
        state["api_key_id"] = key_id
        return key_id

    @staticmethod
    def _note(state: dict, answer: Answer) -> None:
        state["stages_ms"], state["result_count"] = answer.stages_ms, len(answer.items)
        state["model_version"], state["preset_version"] = answer.model_version, answer.preset_version

    def _sponsored(self, scope: str, answer: Callable[[Sequence[str]], Answer], request_id: str, *,
                   query: str | None = None, category: str | None = None, unit: str | None = None) -> Answer:
        """`answer(products)`, the engine's answer carrying the relevance of `products`, with the
        sponsored slots of the scope's active preset filled (`recsys.ads.serving`) and recorded. Ads
        that cannot be served (the database unreachable) leave the organic answer as it is."""
        engine, ads = self.engine, self.ads
        slots = engine.sponsored(scope)
        bidders = None
        if slots is not None:
            try:
                bidders = ads.bidders(scope, slots, query=query, unit=unit)
            except SQLAlchemyError:
                logger.exception("could not read the campaigns: answering without ads")
        found = answer(bidders.products if bidders else ())
        if bidders and bidders.campaigns:
            try:
                found.items, _ = ads.fill(found.items, bidders, found.relevance or {}, slots,
                                          attributes=engine.attributes, titles=engine.titles,
                                          category=category, request_id=request_id, unit=unit)
                if found.teams is not None:  # interleaved: an ad's position is neither arm's
                    found.teams = [item.get("team") for item in found.items]
            except SQLAlchemyError:
                logger.exception("could not record the ads served: answering without ads")
        return found

    async def search(self, state: dict, call: SearchParameters) -> Answer:
        """The search's answer: one arm's list, or both arms' interleaved, when a running
        experiment takes the call's session (or user); with ads where the preset names slots."""
        engine = self.engine
        customer = self.customer(clean_id(call.user))
        unit = unit_of(clean_id(call.session), customer)
        answer = await self.compute(lambda: self._sponsored(
            "search", lambda products: engine.search(call.q, call.k, category=call.category,
                                                     explain=call.explain, unit=unit, relevance_of=products),
            state["request_id"], query=call.q, category=call.category, unit=unit))
        self.remember(state["request_id"], "/search", answer, call.q, unit)
        self._note(state, answer)
        return answer

    async def recommend(self, state: dict, call: RecommendParameters) -> tuple[Answer, str]:
        """The recommendations and the customer's pseudonym; the session's and the user's latest
        clicks, carts and purchases (live events) follow the call's history. With ads where the
        preset names slots."""
        engine, live = self.engine, self.live
        session, customer = clean_id(call.session), self.customer(call.user_id)
        recent = [*live.history(unit_of(session, None)), *live.history(unit_of(None, customer))]
        seen = list(dict.fromkeys([*call.history, *recent[::-1]]))
        unit = unit_of(session, customer)
        answer = await self.compute(lambda: self._sponsored(
            "recommendations", lambda products: engine.recommend(
                customer, call.k, seen, explain=call.explain, trending=live.trending, relevance_of=products),
            state["request_id"], unit=unit), lane="recommend")
        self.remember(state["request_id"], "/recommend", answer, unit=unit)
        self._note(state, answer)
        return answer, customer

    async def similar(self, state: dict, call: SimilarParameters) -> Answer:
        """The products like the call's; LookupError when the model does not know it."""
        engine = self.engine
        answer = await self.compute(lambda: engine.similar(call.product_id, call.k), lane="recommend")
        self.remember(state["request_id"], "/similar", answer)
        self._note(state, answer)
        return answer

    def reload_live(self) -> None:
        """The live view of recent events built again from SQL (after an erasure: a forgotten
        customer's recent products go from memory too), then swapped in; the old feed stops."""
        view = LiveView(self.live.window.total_seconds(), self.live.history_length, self.live.max_units)
        feed = EventFeed(self.url, view).start()
        old, self.live, self.feed = self.feed, view, feed
        if old is not None:
            old.stop()
        logger.warning("rebuilt the live view of recent events after an erasure")

    def start_live(self) -> Service:
        self.served_writer.start()
        self.event_writer.start()
        self.feed = EventFeed(self.url, self.live).start()
        return self

    def close_live(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        self.event_writer.close()
        self.served_writer.close()

    def remember(self, request_id: str, endpoint: str, answer: Answer, query: str | None = None,
                 unit: str | None = None) -> None:
        """Keep the list answered, for the events that will name its request id and positions."""
        products = [item["product_id"] for item in answer.items]
        with self._recent_lock:
            self.recent_lists[request_id] = products
            if len(self.recent_lists) > RECENT_LISTS:
                self.recent_lists.popitem(last=False)
        experiment = answer.experiment or {}
        self.served_writer.record({
            "request_id": request_id, "endpoint": endpoint,
            "query": None if query is None else mask_query(CONTROL.sub(" ", query)), "unit": unit,
            "experiment_id": experiment.get("id"), "arm": experiment.get("arm"), "products": products,
            "teams": answer.teams, "at": datetime.now(timezone.utc).replace(tzinfo=None)})

    def served(self, request_ids: list[str]) -> dict[str, list[str]]:
        """The products of each request id answered (here recently, or by any worker, from SQL)."""
        with self._recent_lock:
            found = {rid: self.recent_lists[rid] for rid in request_ids if rid in self.recent_lists}
        for attempt in range(2):
            missing = [rid for rid in request_ids if rid not in found]
            if not missing:
                break
            if attempt:  # another worker may have answered it an instant ago: its writer is batching
                time.sleep(2 * self.served_writer.interval_s)
            with session_scope(self.url) as session:
                found.update({rid: list(row.products) for rid, row in
                              experiment_store.served_lists(session, missing).items()})
        return found

    def take_events(self, raw) -> tuple[list[dict], int, list[dict], list[dict]] | None:
        """Check a batch and queue its new events: (queued, duplicates, rejected, ad clicks), or None
        when the queue is full (nothing of the batch is queued). ValueError for a body that is no batch.

        Each click naming a request id whose list showed an ad of its product is charged
        (`recsys.ads.campaigns.charge_click`, idempotent by event id and by ad); "ad clicks" says
        what each was charged: {"index", "campaign_id", "outcome", "charged"}."""
        rows, rejected = check_events(raw, self.engine.known_products, self.served)
        for row in rows:
            row["user_id"] = self.customer(row["user_id"])
        ids = [row["event_id"] for row in rows if row["event_id"] is not None]
        stored: set[str] = set()
        if ids:
            with session_scope(self.url) as session:
                stored = experiment_store.stored_event_ids(session, ids)
        new, seen = [], set()
        with self._recent_lock:  # two copies of a batch sent at once: the second finds the first's ids
            for row in rows:
                event_id = row["event_id"]
                if event_id is not None and (event_id in stored or event_id in seen
                                             or event_id in self.recent_event_ids):
                    continue
                seen.add(event_id)
                new.append(row)
            if not self.event_writer.offer(new):
                return None
            for event_id in seen - {None}:
                self.recent_event_ids[event_id] = None
            while len(self.recent_event_ids) > RECENT_LISTS:
                self.recent_event_ids.popitem(last=False)
        refused = {problem["index"] for problem in rejected}
        return new, len(rows) - len(new), rejected, self._charge(
            zip([index for index in range(len(raw)) if index not in refused], rows))

    def _charge(self, indexed_rows) -> list[dict]:
        """Charge the clicks among (index in the batch, checked event) on ads; what each was charged."""
        charges = []
        for index, row in indexed_rows:
            if row["type"] != "click" or not row.get("request_id"):
                continue
            # An event without an id is charged once per ad all the same (one click per impression).
            event_id = row["event_id"] or f"{row['request_id']}:{row['product_id']}"
            charge = charge_click(event_id, row["request_id"], row["product_id"], url=self.url)
            if charge.outcome not in ("unknown_request", "not_an_ad"):
                charges.append({"index": index, **charge.to_dict()})
        return charges

    def record(self, endpoint: str, status: int, latency_ms: float, state: dict,
               request_id: str) -> None:
        """Count the request in Prometheus and queue its row for SQL (about 20 µs)."""
        stages = state.get("stages_ms") or {}
        count = state.get("result_count", 0)
        prometheus = self.prometheus
        prometheus.requests.labels(endpoint, str(status)).inc()
        prometheus.latency.labels(endpoint).observe(latency_ms / 1000)
        for name, milliseconds in stages.items():
            prometheus.stage_latency.labels(endpoint, name).observe(milliseconds / 1000)
        if status < 400:
            prometheus.results.labels(endpoint).observe(count)
        self.writer.record({
            "at": datetime.now(timezone.utc).replace(tzinfo=None), "request_id": request_id,
            "endpoint": endpoint, "status": status, "latency_ms": latency_ms,
            **{f"{name}_ms": stages.get(name) for name in STAGES},
            "result_count": count, "model_version": state.get("model_version"),
            "preset_version": state.get("preset_version"), "api_key_id": state.get("api_key_id"),
            "replica": self.replica})


def _start_alerts(url: str | None, interval_s: float):
    """The alert rules are evaluated by a scheduler thread in the service's process."""
    return AlertScheduler(interval_s=interval_s, url=url).start()


@asynccontextmanager
async def running_service(url: str | None = None,
                          engine: ServingEngine | Callable[[], ServingEngine] | None = None, *,
                          compute_threads: int = 1, metrics_interval_s: float = 0.5,
                          key_refresh_s: float = 5.0, alerts_interval_s: float | None = 15.0,
                          follow_s: float | None = 2.0, max_pending_events: int = 100_000,
                          replica: str | None = None) -> AsyncIterator[Service]:
    """A started `Service`, stopped (its writers flushed) on leaving; run inside an event loop.

    `url`: the database (default `DATABASE_URL`); `engine`: a fitted engine or a function that
    builds one (default: the database's active state, followed every `follow_s` seconds,
    `recsys.serving.follow`; None: not followed); `compute_threads`: threads doing model work
    (0: on the event loop); `alerts_interval_s`: how often alert rules are evaluated (None: not in
    this process); `max_pending_events`: events waiting for SQL before batches are refused;
    `replica`: the name its request metrics carry (default `replica_name()`).
    """
    follower = None
    if engine is None:
        follower = Follower(url or database_url(), interval_s=follow_s or 2.0)
        built = await anyio.to_thread.run_sync(follower.build)
    elif callable(engine) and not isinstance(engine, ServingEngine):
        built = await anyio.to_thread.run_sync(engine)
    else:
        built = engine
    await anyio.to_thread.run_sync(built.warm_up)
    verifier = KeyVerifier(url, refresh_s=key_refresh_s)
    verifier.refresh()
    writer = MetricsWriter(url, interval_s=metrics_interval_s).start()
    service = Service(built, verifier, writer, compute_threads, url,
                      max_pending_events=max_pending_events, replica=replica).start_live()
    if follower is not None and follow_s:
        follower.on_erasure = service.reload_live
        service.follower = follower.start(lambda new: setattr(service, "engine", new))
    if alerts_interval_s is not None:
        service.alerts = _start_alerts(url, alerts_interval_s)
    try:
        yield service
    finally:
        if service.follower is not None:
            service.follower.stop()
        if service.alerts is not None:
            service.alerts.stop()
        service.close_live()
        writer.close()
        logger.info("request metrics: %d written, %d dropped", writer.written, writer.dropped)
