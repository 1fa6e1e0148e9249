"""The REST service: search, recommendations and similar items over HTTP (FastAPI).

    python -m recsys serve --host 127.0.0.1 --port 8000      # then open /docs

Endpoints (the OpenAPI schema is at /openapi.json, browsable at /docs):

- ``GET /search?q=&k=&explain=&category=``: hybrid search of the active catalog
  (``category``: the shopper's current category, for category-scoped rules;
  ``searched_query`` says what was searched when misspelled words were corrected);
- ``GET /recommend/{user_id}?k=&history=&explain=``: recommendations for a
  user, updated in real time by the current session's product ids (``history``,
  repeated). A user the model does not know is scored from ``history``; with no
  usable history the answer is the most popular products and says
  ``"fallback": "popular"`` (a new visitor is normal, not an error);
- ``GET /similar/{product_id}?k=``: products like a product; 404 when the
  model does not know the product;
- ``GET /health`` and ``GET /metrics`` (Prometheus text format): no key needed.

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
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Security
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

from db.engine import database_url
from recsys.alerts import AlertScheduler
from recsys.serving.engine import Answer, ServingEngine
from recsys.serving.follow import Follower
from recsys.serving.keys import KeyVerifier
from recsys.serving.metrics import MetricsWriter

logger = logging.getLogger(__name__)
MAX_K = 100
MAX_HISTORY = 200
API_ENDPOINTS = ("/search", "/recommend", "/similar")  # recorded in request_metrics
STAGES = ("encode", "retrieve", "fuse", "rules", "rerank")
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many items, 1 to {MAX_K}")]
Explain = Annotated[bool, Query(description="add each item's explanation")]
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


class Recommendations(Results):
    user_id: str
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
    """What the endpoints share: the engine, the key verifier, the metrics writer and registry."""
    def __init__(self, engine: ServingEngine, verifier: KeyVerifier, writer: MetricsWriter,
                 compute_threads: int):
        self.engine = engine
        self.follower = None  # recsys.serving.follow.Follower, when activations are followed
        self.verifier = verifier
        self.writer = writer
        self.prometheus = PrometheusMetrics()
        # CapacityLimiters of their own, one per lane: model work never waits behind other
        # thread-pool jobs, and a cheap recommendation never queues behind searches.
        self.limiters = ({lane: anyio.CapacityLimiter(compute_threads) for lane in LANES}
                         if compute_threads > 0 else None)
        self.alerts = None

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


def _start_alerts(url: str | None, interval_s: float):
    """The alert rules are evaluated by a scheduler thread in the service's process."""
    return AlertScheduler(interval_s=interval_s, url=url).start()


def create_app(url: str | None = None, engine: ServingEngine | Callable[[], ServingEngine] | None = None,
               *, compute_threads: int = 1, metrics_interval_s: float = 0.5,
               key_refresh_s: float = 5.0, alerts_interval_s: float | None = 15.0,
               follow_s: float | None = 2.0) -> FastAPI:
    """The FastAPI app; its lifespan builds the engine and starts the metrics writer and alerts.

    `url`: the database (default `DATABASE_URL`); `engine`: a fitted engine or a
    function that builds one (default: the database's active state, followed every `follow_s`
    seconds, `recsys.serving.follow`; None: not followed); `compute_threads`: threads doing model
    work (0: on the event loop); `alerts_interval_s`: how often alert rules are evaluated (None:
    not in this process).
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
        service = Service(built, verifier, writer, compute_threads)
        if follower is not None and follow_s:
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
    async def search(request: Request, q: Annotated[str, Query(max_length=500,
                                                                description="the query")],
                     k: K = 10, explain: Explain = False,
                     category: Annotated[str | None, Query(
                         max_length=128, description="the shopper's current category, "
                                                     "for category-scoped business rules")] = None,
                     ) -> dict:
        if not q.strip():
            raise HTTPException(422, "q: the search query is empty; send at least one word")
        engine_ = service_of(request).engine
        answer = await service_of(request).compute(
            lambda: engine_.search(q, k, category=category, explain=explain))
        return {**answered(request, answer), "searched_query": answer.searched_query}

    @app.get("/recommend/{user_id}", response_model=Recommendations,
             dependencies=[Depends(require_key)], summary="Recommendations for a user or session")
    async def recommend(request: Request, user_id: Annotated[str, Path(max_length=128)], k: K = 10,
                        history: Annotated[list[str], Query(
                            max_length=MAX_HISTORY,
                            description="product ids of the current session, repeated: "
                                        "history=A&history=B")] = [],  # noqa: B006 - FastAPI copies it
                        explain: Explain = False) -> dict:
        engine_ = service_of(request).engine
        answer = await service_of(request).compute(
            lambda: engine_.recommend(user_id, k, history, explain=explain), lane="recommend")
        return {**answered(request, answer), "user_id": user_id, "fallback": answer.fallback}

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
        return answered(request, answer)

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
                "metrics_dropped": service.writer.dropped}

    @app.get("/metrics", response_class=PlainTextResponse,
             summary="Prometheus metrics (text exposition format)")
    async def metrics(request: Request) -> PlainTextResponse:
        service = service_of(request)
        service.prometheus.pending.set(service.writer.pending)
        service.prometheus.dropped.set(service.writer.dropped)
        return PlainTextResponse(generate_latest(service.prometheus.registry),
                                 media_type=CONTENT_TYPE_LATEST)

    return app
