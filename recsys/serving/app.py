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
- ``GET /health`` (what is served, and ``replica``: this process's name) and ``GET /metrics``
  (Prometheus text format): no key needed.

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
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from recsys.serving.engine import Answer, ServingEngine
from recsys.serving.service import (
    API_ENDPOINTS,
    KEY_HEADER,
    MAX_HISTORY,
    MAX_ID,
    MAX_K,
    MAX_QUERY,
    NO_CONTROL,
    KeyRejected,
    RecommendParameters,
    SearchParameters,
    Service,
    SimilarParameters,
    problems,
    running_service,
)

logger = logging.getLogger(__name__)
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many items, 1 to {MAX_K}")]
Explain = Annotated[bool, Query(description="add each item's explanation")]
Session_ = Annotated[str | None, Query(max_length=MAX_ID, pattern=NO_CONTROL,
                                       description="the shopper's session id: what online experiments "
                                                   "assign, what events name")]
User = Annotated[str | None, Query(max_length=MAX_ID, pattern=NO_CONTROL,
                                   description="the signed-in shopper's user id (assigned by experiments "
                                               "when no session is sent)")]
api_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False,
                              description="an API key from the Serving page or "
                                          "`python -m recsys apikey create`")


# --- response models (they make the OpenAPI schema) ------------------------------------

class Item(BaseModel):
    product_id: str
    title: str
    score: float
    explanation: dict[str, Any] | None = Field(
        None, description="with explain=true: reasons, per-source scores and rule effects")
    team: str | None = Field(None, description='under an interleaving experiment: "control" or "treatment", '
                                               "the arm whose list the item came from")
    sponsored: bool = Field(False, description="a sponsored product (an ad), placed at a slot the preset "
                                               "names; its score is its relevance to the request, 0 to 1")
    campaign_id: int | None = Field(None, description="the campaign of a sponsored product")


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


class AdClickCharged(BaseModel):
    index: int = Field(description="the event's place in the batch, from 0")
    campaign_id: int | None
    outcome: str = Field(description="charged, capped (what a budget had left), budget_exhausted, replayed "
                                     "or already_clicked (nothing charged)")
    charged: float


class EventsAccepted(BaseModel):
    accepted: int = Field(description="events taken: queued in the service and written to SQL within a "
                                      "second (a service stopped while the database is down loses its queue)")
    duplicates: int = Field(description="events whose event_id was received before: not stored twice")
    rejected: list[RejectedEvent]
    ad_clicks: list[AdClickCharged] = Field(
        default_factory=list, description="the clicks on sponsored products of this batch and what each was "
                                          "charged (a replayed event or a second click on one ad: nothing)")
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
    replica: str = Field(description="this service process's name, recorded with its request metrics "
                                     "($WORKBENCH_REPLICA, default host:port)")
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


def create_app(url: str | None = None, engine: ServingEngine | Callable[[], ServingEngine] | None = None,
               *, compute_threads: int = 1, metrics_interval_s: float = 0.5,
               key_refresh_s: float = 5.0, alerts_interval_s: float | None = 15.0,
               follow_s: float | None = 2.0, max_pending_events: int = 100_000,
               replica: str | None = None) -> FastAPI:
    """The FastAPI app; its lifespan builds the engine and starts the metrics writer and alerts.

    `url`: the database (default `DATABASE_URL`); `engine`: a fitted engine or a
    function that builds one (default: the database's active state, followed every `follow_s`
    seconds, `recsys.serving.follow`; None: not followed); `compute_threads`: threads doing model
    work (0: on the event loop); `alerts_interval_s`: how often alert rules are evaluated (None:
    not in this process); `max_pending_events`: events waiting for SQL before batches get 429;
    `replica`: the name of this process in the request metrics and /health (default
    `recsys.serving.service.replica_name`: ``$WORKBENCH_REPLICA`` or the host name).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with running_service(url, engine, compute_threads=compute_threads,
                                   metrics_interval_s=metrics_interval_s, key_refresh_s=key_refresh_s,
                                   alerts_interval_s=alerts_interval_s, follow_s=follow_s,
                                   max_pending_events=max_pending_events, replica=replica) as service:
            app.state.service = service
            yield

    app = FastAPI(title="Search & recommendation workbench API", version="1", lifespan=lifespan,
                  description=__doc__.split("\n\n", 1)[1].split("Endpoints are")[0],
                  responses={401: {"model": Problem, "description": "missing or unknown API key"},
                             422: {"model": Problem, "description": "invalid parameters"}})
    app.add_middleware(RequestMetricsMiddleware, service=lambda: getattr(app.state, "service", None))

    def service_of(request: Request) -> Service:
        return request.app.state.service

    def state_of(request: Request) -> dict:
        """The request's metrics, which `RequestMetricsMiddleware` records (request.state's dict)."""
        return request.scope.setdefault("state", {})

    async def require_key(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> int:
        try:
            return service_of(request).check_key(key, state_of(request))
        except KeyRejected as error:
            raise HTTPException(401, str(error), headers={"WWW-Authenticate": "ApiKey"}) from None

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": problems(error.errors(), skip=1)}, status_code=422)

    def answered(request: Request, answer: Answer) -> dict:
        return {"items": answer.items, "model_version": answer.model_version,
                "preset_version": answer.preset_version,
                "request_id": state_of(request).get("request_id", "")}

    @app.get("/search", response_model=SearchResults, dependencies=[Depends(require_key)],
             summary="Hybrid search of the active catalog")
    async def search(request: Request, q: Annotated[str, Query(max_length=MAX_QUERY, pattern=r"\S",
                                                                description="the query: at least one word")],
                     k: K = 10, explain: Explain = False,
                     category: Annotated[str | None, Query(
                         max_length=MAX_ID, description="the shopper's current category, "
                                                        "for category-scoped business rules")] = None,
                     session: Session_ = None, user: User = None) -> dict:
        call = SearchParameters.model_construct(q=q, k=k, explain=explain, category=category,
                                                session=session, user=user)
        answer = await service_of(request).search(state_of(request), call)
        return {**answered(request, answer), "searched_query": answer.searched_query,
                "experiment": answer.experiment}

    @app.get("/recommend/{user_id}", response_model=Recommendations,
             dependencies=[Depends(require_key)], summary="Recommendations for a user or session")
    async def recommend(request: Request, user_id: Annotated[str, Path(max_length=MAX_ID)], k: K = 10,
                        history: Annotated[list[str], Query(
                            max_length=MAX_HISTORY,
                            description="product ids of the current session, repeated: "
                                        "history=A&history=B")] = [],  # noqa: B006 - FastAPI copies it
                        session: Session_ = None, explain: Explain = False) -> dict:
        call = RecommendParameters.model_construct(user_id=user_id, k=k, history=history, session=session,
                                                   explain=explain)
        answer, customer = await service_of(request).recommend(state_of(request), call)
        return {**answered(request, answer), "user_id": customer, "fallback": answer.fallback}

    @app.get("/similar/{product_id}", response_model=Results, dependencies=[Depends(require_key)],
             responses={404: {"model": Problem, "description": "the product is not in the model"}},
             summary="Products similar to a product")
    async def similar(request: Request, product_id: Annotated[str, Path(max_length=MAX_ID)],
                      k: K = 10) -> dict:
        call = SimilarParameters.model_construct(product_id=product_id, k=k)
        try:
            answer = await service_of(request).similar(state_of(request), call)
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
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
        new, duplicates, rejected, charged = taken
        request.state.result_count = len(new)
        body = {"accepted": len(new), "duplicates": duplicates,
                "rejected": [{**problem, "status": 422} for problem in rejected], "ad_clicks": charged,
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
        return {"status": "ok", "replica": service.replica, "model_version": served.model_version,
                "data_versions": served.data_versions,
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
