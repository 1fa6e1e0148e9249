"""The REST service: search, recommendations and similar items over HTTP (FastAPI).

    python -m recsys serve --host 127.0.0.1 --port 8000      # then open /docs

Endpoints (the OpenAPI schema is at /openapi.json, browsable at /docs):

- ``GET /search?q=&k=&explain=&category=&session=&user=``: hybrid search of the active catalog
  (``category``: the shopper's current category, for category-scoped rules;
  ``searched_query`` says what was searched when misspelled words were corrected). Under a
  running online experiment (``python -m recsys experiments create``) a session (or user) the
  experiment takes gets one arm's list (A/B, by a stable hash) or both arms' lists interleaved
  (team draft), each item naming its ``team``; ``experiment`` says which;
- ``GET /recommend/{user_id}?k=&history=&session=&explain=``: recommendations for a
  user, updated in real time by the current session's product ids (``history``,
  repeated) and by the clicks, carts and purchases ``POST /events`` received from the
  session and the user (within a second). A user the model does not know is scored from
  them; with none the answer is the most popular products, all-time and of the last hour
  blended, and says ``"fallback": "popular"`` (a new visitor is normal, not an error);
- ``GET /similar/{product_id}?k=``: products like a product; 404 when the
  model does not know the product;
- ``POST /events``: a JSON list of shoppers' events (view, click, cart, purchase; see
  `recsys.experiments.live`), checked one by one: the good ones are stored (202) and each bad
  one gets its own 422 message; ``event_id`` makes a re-sent batch harmless; when the queue of
  events waiting for SQL is full the whole batch is refused with 429 (send it again);
- ``GET /health`` and ``GET /metrics`` (Prometheus text format): no key needed.

Customer ids (``user_id``, ``user``, an event's ``user``) are sent as the shop knows them and
pseudonymised at once with the workbench's key (`recsys.privacy`); the service keeps, fits and
answers only the pseudonym (``c-`` and 20 hex digits). Search queries are stored with personal
data (e-mail addresses, phone and card numbers, ...) masked.

Every other request needs an API key in the ``X-API-Key`` header (issued on the
Serving page or by ``python -m recsys apikey create --name NAME``); a missing
or unknown key gets 401, invalid parameters (a blank query, k outside 1..100)
get 422, each with a JSON ``detail`` that says what to change.

Answers carry the items (product id, title, score; with ``explain=true`` the
reasons, per-source scores and rule effects), the model version and the preset
version. Each API request is recorded in SQL (``request_metrics``): endpoint,
status, total and per-stage latency, result count, versions, time, API key and
the client's ``X-Request-ID`` (echoed back; one is made up when absent),
through the batched `MetricsWriter`, flushed when the service stops.

Endpoints are ``async`` and hand the model work to threads of their own, in
two lanes `compute_threads` wide each (default 1): searches in one,
recommendations and similar items in the other, so the event loop keeps
accepting and answering (/health, 401s) while a search computes, and a 5 ms
recommendation does not wait behind queued searches; on two cores the lanes
run side by side. 2 torch threads per search made it several times slower
than 1 (190 against 30 ms) whenever the cores were busy, so `serve` gives
torch one thread per worker; see docs/benchmarks.md, "REST service".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated, Any

import anyio
from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from db import experiments as experiment_store
from db.engine import database_url, session_scope
from recsys.alerts import AlertScheduler
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
API_ENDPOINTS = ("/search", "/recommend", "/similar", "/events")  # recorded in request_metrics
LISTS = ("/search", "/recommend", "/similar")  # their answers are remembered for the events that follow
RECENT_LISTS = 100_000  # answers remembered in memory (older ones are read from SQL)
STAGES = ("encode", "retrieve", "fuse", "rules", "rerank")
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many items, 1 to {MAX_K}")]
Explain = Annotated[bool, Query(description="add each item's explanation")]
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # ids are stored in SQL: no tabs, newlines or NULs
Session_ = Annotated[str | None, Query(max_length=128, pattern=NO_CONTROL,
                                       description="the shopper's session id: what online experiments "
                                                   "assign, what events name")]
User = Annotated[str | None, Query(max_length=128, pattern=NO_CONTROL,
                                   description="the signed-in shopper's user id (assigned by experiments "
                                               "when no session is sent)")]
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="an API key from the Serving page or "
                                          "`python -m recsys apikey create`")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5)


# --- response models (they make the OpenAPI schema) ------------------------------------

class Item(BaseModel):
    product_id: str
    title: str
    score: float
    explanation: dict[str, Any] | None = Field(
        None, description="with explain=true: reasons, per-source scores and rule effects")
    team: str | None = Field(None, description='under an interleaving experiment: "control" or "treatment", '
                                               "the arm whose list the item came from")


class ExperimentInfo(BaseModel):
    id: int
    name: str
    method: str = Field(description='"interleaving" or "ab"')
    arm: str = Field(description='"control" or "treatment" (A/B), "interleaved" (interleaving)')


class Results(BaseModel):
    items: list[Item]
    model_version: str = Field(description="components and the data versions they were fitted on")
    preset_version: str = Field(description='the fusion preset served, e.g. "summer v3", or "default"')
    request_id: str = Field(description="the request's id (also the X-Request-ID header): the one a client "
                                        "sent, or a new one; events that follow the answer name it")


class SearchResults(Results):
    searched_query: str | None = Field(
        None, description="the query as it was searched when misspelled words were corrected against "
                          "the catalog's words (e.g. 'toilet seat' for 'toliet seat'); null otherwise")
    experiment: ExperimentInfo | None = Field(None, description="the online experiment that answered, if any")


_ID = {"type": "string", "maxLength": 128}
EVENTS_SCHEMA = {  # what POST /events documents; each event is checked by recsys.experiments.live
    "type": "array", "maxItems": 1000, "items": {
        "type": "object", "required": ["type", "product_id"], "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": ["view", "click", "cart", "purchase"]},
            "product_id": {**_ID, "description": "a product of the served catalog"},
            "session": {**_ID, "description": "the shopper's session (session or user is needed)"},
            "user": {**_ID, "description": "the signed-in shopper"},
            "request_id": {"type": "string", "maxLength": 64,
                           "description": "the answer the event follows (its request_id)"},
            "position": {"type": "integer", "minimum": 1, "description": "1-based, in that answer"},
            "time": {"type": "string", "format": "date-time", "description": "default: when received"},
            "event_id": {**_ID, "description": "makes sending the event again harmless"}}}}


class RejectedEvent(BaseModel):
    index: int = Field(description="the event's place in the batch, from 0")
    event_id: str | None
    status: int = Field(422, description="422: this event is invalid and was not stored")
    detail: str


class EventsAccepted(BaseModel):
    accepted: int = Field(description="events taken: queued in the service and written to SQL within a "
                                      "second (a service stopped while the database is down loses its queue)")
    duplicates: int = Field(description="events whose event_id was received before: not stored twice")
    rejected: list[RejectedEvent]
    request_id: str


class Recommendations(Results):
    user_id: str = Field(description="the customer's pseudonym (the id sent is never answered, stored or "
                                     "logged)")
    fallback: str | None = Field(None, description='"popular": the user is unknown and sent no '
                                                   "usable history, so these are the most popular")


class ServedPresetInfo(BaseModel):
    name: str = Field(description='"default" when no preset is stored and the shipped default is served')
    version: int | None
    label: str = Field(description='e.g. "summer-sale v3"')


class Health(BaseModel):
    status: str
    model_version: str
    data_versions: dict[str, int | None] = Field(description="the catalog and events versions served")
    embedding_model: str = Field(description='"embedding-base" (the shipped model) or "embedding-v<N>"')
    presets: dict[str, ServedPresetInfo] = Field(description="the preset served for each scope")
    served_since: datetime = Field(description="when the engine serving now started to (UTC)")
    following: bool = Field(description="whether activations are served without a restart")
    waiting_for: str | None = Field(None, description="what a newer activation waits for before it is served")
    metrics_pending: int
    metrics_written: int
    metrics_dropped: int
    experiment: str | None = Field(None, description='the running online experiment, e.g. "3 new-boosts: '
                                                     "interleaving of default v1 and boosts v2 on 50% of "
                                                     'sessions"')
    events_pending: int = Field(description="events received and waiting for SQL")
    events_written: int


class Problem(BaseModel):
    detail: str


# --- Prometheus ---------------------------------------------------------------------------

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
                 events_interval_s: float = 0.2):
        self.engine = engine
        self.url = url
        self.follower = None  # recsys.serving.follow.Follower, when activations are followed
        self.verifier = verifier
        self.writer = writer
        self.served_writer = MetricsWriter(url, interval_s=events_interval_s, what="served lists",
                                           insert=experiment_store.insert_served)
        self.event_writer = MetricsWriter(url, interval_s=events_interval_s, what="live events",
                                          insert=experiment_store.insert_events,
                                          max_pending=max_pending_events)
        self.live = LiveView()
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
        return await anyio.to_thread.run_sync(function, limiter=self.limiters[lane])

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

    def take_events(self, raw) -> tuple[list[dict], int, list[dict]] | None:
        """Check a batch and queue its new events: (queued, duplicates, rejected), or None when
        the queue is full (nothing of the batch is queued). ValueError for a body that is no batch."""
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
        return new, len(rows) - len(new), rejected

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
            "preset_version": state.get("preset_version"), "api_key_id": state.get("api_key_id")})


class RequestMetricsMiddleware:
    """Times each API request and hands its metrics to `Service.record` (pure ASGI: cheap)."""
    def __init__(self, app, service: Callable[[], Service | None]):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        # Recorded as "/search", "/recommend", "/similar": the form alert rules and charts use.
        endpoint = "/" + scope["path"].strip("/").split("/", 1)[0] if scope["type"] == "http" else ""
        if endpoint not in API_ENDPOINTS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
        request_id = request_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            service = self.service()
            if service is not None:
                try:
                    service.record(endpoint, status, (time.perf_counter() - started) * 1000, state,
                                   request_id)
                except Exception:  # noqa: BLE001 - metrics must never fail a request
                    logger.exception("could not record the metrics of a request")


def _experiment_label(engine: ServingEngine) -> str | None:
    experiment = engine.experiment
    if experiment is None:
        return None
    method = "interleaving" if experiment.method == "interleaving" else "A/B test"
    return (f"{experiment.id} {experiment.name}: {method} of {experiment.arms['control'].label} and "
            f"{experiment.arms['treatment'].label} on {experiment.traffic:.0%} of sessions")


def _start_alerts(url: str | None, interval_s: float):
    """The alert rules are evaluated by a scheduler thread in the service's process."""
    return AlertScheduler(interval_s=interval_s, url=url).start()


def create_app(url: str | None = None, engine: ServingEngine | Callable[[], ServingEngine] | None = None,
               *, compute_threads: int = 1, metrics_interval_s: float = 0.5,
               key_refresh_s: float = 5.0, alerts_interval_s: float | None = 15.0,
               follow_s: float | None = 2.0, max_pending_events: int = 100_000) -> FastAPI:
    """The FastAPI app; its lifespan builds the engine and starts the metrics writer and alerts.

    `url`: the database (default `DATABASE_URL`); `engine`: a fitted engine or a
    function that builds one (default: the database's active state, followed every `follow_s`
    seconds, `recsys.serving.follow`; None: not followed); `compute_threads`: threads doing model
    work (0: on the event loop); `alerts_interval_s`: how often alert rules are evaluated (None:
    not in this process); `max_pending_events`: events waiting for SQL before batches get 429.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
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
                          max_pending_events=max_pending_events).start_live()
        if follower is not None and follow_s:
            follower.on_erasure = service.reload_live
            service.follower = follower.start(lambda new: setattr(service, "engine", new))
        if alerts_interval_s is not None:
            service.alerts = _start_alerts(url, alerts_interval_s)
        app.state.service = service
        try:
            yield
        finally:
            if service.follower is not None:
                service.follower.stop()
            if service.alerts is not None:
                service.alerts.stop()
            service.close_live()
            writer.close()
            logger.info("request metrics: %d written, %d dropped", writer.written, writer.dropped)

    app = FastAPI(title="Search & recommendation workbench API", version="1", lifespan=lifespan,
                  description=__doc__.split("\n\n", 1)[1].split("Endpoints are")[0],
                  responses={401: {"model": Problem, "description": "missing or unknown API key"},
                             422: {"model": Problem, "description": "invalid parameters"}})
    app.add_middleware(RequestMetricsMiddleware, service=lambda: getattr(app.state, "service", None))

    def service_of(request: Request) -> Service:
        return request.app.state.service

    async def require_key(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> int:
        if not key:
            raise HTTPException(401, "this endpoint needs an API key in the X-API-Key header",
                                headers={"WWW-Authenticate": "ApiKey"})
        key_id = service_of(request).verifier.verify(key)
        if key_id is None:
            raise HTTPException(401, "the API key is not valid: it is unknown or was revoked",
                                headers={"WWW-Authenticate": "ApiKey"})
        request.state.api_key_id = key_id
        return key_id

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
        messages = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "request"
            messages.append(f"{where}: {problem.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(messages)}, status_code=422)

    def answered(request: Request, answer: Answer) -> dict:
        state = request.state
        state.stages_ms, state.result_count = answer.stages_ms, len(answer.items)
        state.model_version, state.preset_version = answer.model_version, answer.preset_version
        return {"items": answer.items, "model_version": answer.model_version,
                "preset_version": answer.preset_version, "request_id": getattr(state, "request_id", "")}

    @app.get("/search", response_model=SearchResults, dependencies=[Depends(require_key)],
             summary="Hybrid search of the active catalog")
    async def search(request: Request, q: Annotated[str, Query(max_length=500, pattern=r"\S",
                                                                description="the query: at least one word")],
                     k: K = 10, explain: Explain = False,
                     category: Annotated[str | None, Query(
                         max_length=128, description="the shopper's current category, "
                                                     "for category-scoped business rules")] = None,
                     session: Session_ = None, user: User = None) -> dict:
        if not q.strip():
            raise HTTPException(422, "q: the search query is empty; send at least one word")
        service = service_of(request)
        engine_ = service.engine
        customer = service.customer(clean_id(user))
        unit, request_id = unit_of(clean_id(session), customer), request.state.request_id
        answer = await service.compute(
            lambda: engine_.search(q, k, category=category, explain=explain, unit=unit))
        service.remember(request_id, "/search", answer, q, unit)
        return {**answered(request, answer), "searched_query": answer.searched_query,
                "experiment": answer.experiment}

    @app.get("/recommend/{user_id}", response_model=Recommendations,
             dependencies=[Depends(require_key)], summary="Recommendations for a user or session")
    async def recommend(request: Request, user_id: Annotated[str, Path(max_length=128)], k: K = 10,
                        history: Annotated[list[str], Query(
                            max_length=MAX_HISTORY,
                            description="product ids of the current session, repeated: "
                                        "history=A&history=B")] = [],  # noqa: B006 - FastAPI copies it
                        session: Session_ = None, explain: Explain = False) -> dict:
        service = service_of(request)
        engine_, live = service.engine, service.live
        # The session's and the user's latest clicks, carts and purchases (POST /events) follow history.
        session, customer = clean_id(session), service.customer(user_id)
        recent = [*live.history(unit_of(session, None)), *live.history(unit_of(None, customer))]
        seen = list(dict.fromkeys([*history, *recent[::-1]]))
        answer = await service.compute(
            lambda: engine_.recommend(customer, k, seen, explain=explain, trending=live.trending),
            lane="recommend")
        service.remember(request.state.request_id, "/recommend", answer, unit=unit_of(session, customer))
        return {**answered(request, answer), "user_id": customer, "fallback": answer.fallback}

    @app.get("/similar/{product_id}", response_model=Results, dependencies=[Depends(require_key)],
             responses={404: {"model": Problem, "description": "the product is not in the model"}},
             summary="Products similar to a product")
    async def similar(request: Request, product_id: Annotated[str, Path(max_length=128)],
                      k: K = 10) -> dict:
        engine_ = service_of(request).engine
        try:
            answer = await service_of(request).compute(lambda: engine_.similar(product_id, k),
                                                       lane="recommend")
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        service_of(request).remember(request.state.request_id, "/similar", answer)
        return answered(request, answer)

    @app.post("/events", response_model=EventsAccepted, status_code=202, dependencies=[Depends(require_key)],
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": EVENTS_SCHEMA}}}},
              responses={422: {"description": "the body is not a list of events, or every event is invalid"},
                         429: {"model": Problem, "description": "too many events wait for SQL: send the "
                                                               "batch again in a moment (nothing was kept)"},
                         503: {"model": Problem, "description": "the database is unreachable: send the "
                                                               "batch again in a moment (nothing was kept)"}},
              summary="Shoppers' views, clicks, carts and purchases")
    async def events(request: Request, batch: Annotated[Any, Body(
            description="a JSON list of events: {type, product_id, session and/or user, request_id?, "
                        "position?, time?, event_id?}")]) -> Any:
        service = service_of(request)
        try:
            taken = await anyio.to_thread.run_sync(lambda: service.take_events(batch))
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        except SQLAlchemyError:
            logger.exception("could not check a batch of events against the database")
            raise HTTPException(503, "the database could not be reached to check the events; nothing of "
                                     "this batch was kept: send it again in a moment",
                                headers={"Retry-After": "5"}) from None
        if taken is None:
            raise HTTPException(429, f"{service.event_writer.pending:,} events are waiting to be stored; "
                                     "nothing of this batch was kept: send it again in a second",
                                headers={"Retry-After": "1"})
        new, duplicates, rejected = taken
        request.state.result_count = len(new)
        body = {"accepted": len(new), "duplicates": duplicates,
                "rejected": [{**problem, "status": 422} for problem in rejected],
                "request_id": request.state.request_id}
        if rejected and not new and not duplicates:
            return JSONResponse({"detail": f"none of the {len(rejected)} event(s) is valid; the first: "
                                           f"event {rejected[0]['index']}: {rejected[0]['detail']}", **body},
                                status_code=422)
        return body

    @app.get("/health", response_model=Health, summary="Is the service up, and what does it serve")
    async def health(request: Request) -> dict:
        service = service_of(request)
        served = service.engine
        follower = service.follower
        return {"status": "ok", "model_version": served.model_version, "data_versions": served.data_versions,
                "embedding_model": served.embedding.label,
                "presets": {scope: {"name": preset.name, "version": preset.version, "label": preset.label}
                            for scope, preset in served.presets.items()},
                "served_since": service.served_since, "following": follower is not None,
                "waiting_for": None if follower is None else follower.waiting_for,
                "metrics_pending": service.writer.pending, "metrics_written": service.writer.written,
                "metrics_dropped": service.writer.dropped, "experiment": _experiment_label(served),
                "events_pending": service.event_writer.pending,
                "events_written": service.event_writer.written}

    @app.get("/metrics", response_class=PlainTextResponse,
             summary="Prometheus metrics (text exposition format)")
    async def metrics(request: Request) -> PlainTextResponse:
        service = service_of(request)
        service.prometheus.pending.set(service.writer.pending)
        service.prometheus.dropped.set(service.writer.dropped)
        return PlainTextResponse(generate_latest(service.prometheus.registry),
                                 media_type=CONTENT_TYPE_LATEST)

    return app
