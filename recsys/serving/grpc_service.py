"""The gRPC service: the REST service's search, recommendations and similar items over gRPC.

    python -m recsys serve-grpc --host 127.0.0.1 --port 50051

The protocol is `recsys/serving/protos/workbench.proto` (service ``recsys.workbench.v1.Workbench``,
calls ``Search``, ``Recommend``, ``Similar``). This module is only a front end: each call goes
through `recsys.serving.service` like its REST twin, so both protocols check the same key
(``x-api-key`` metadata; ``x-request-id`` names the call, made up when absent, and comes back
in the trailing metadata), the same limits with the same messages, answer from the same engine
(followed activations, online experiments, live events) and write the same ``request_metrics`` row
(endpoint ``/search``, ``/recommend`` or ``/similar``; status as REST would answer it: 200, 401,
404, 422 or 500, so alert rules and the Monitoring page count both protocols alike). Errors map to
status codes as REST's do to HTTP: 401 -> UNAUTHENTICATED, 422 -> INVALID_ARGUMENT,
404 -> NOT_FOUND, 500 -> INTERNAL.

>>> import grpc
>>> from recsys.serving.protos import workbench_pb2 as pb, workbench_pb2_grpc as rpc
>>> stub = rpc.WorkbenchStub(grpc.insecure_channel("127.0.0.1:50051"))  # doctest: +SKIP
>>> stub.Search(pb.SearchRequest(q="red mug", k=3), metadata=[("x-api-key", key)])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import Message
from pydantic_core import to_jsonable_python

from recsys.serving.engine import Answer
from recsys.serving.protos import workbench_pb2 as pb
from recsys.serving.protos import workbench_pb2_grpc as rpc
from recsys.serving.service import (
    InvalidParameters,
    KeyRejected,
    RecommendParameters,
    SearchParameters,
    Service,
    SimilarParameters,
    check,
    running_service,
)

logger = logging.getLogger(__name__)
KEY_METADATA = "x-api-key"
REQUEST_ID_METADATA = "x-request-id"
GRACE_S = 5.0  # calls in flight at shutdown get this long to finish


def _optional(request: Message, field: str, default=None):
    return getattr(request, field) if request.HasField(field) else default


def _items(answer: Answer) -> list[pb.Item]:
    items = []
    for item in answer.items:
        message = pb.Item(product_id=item["product_id"], title=item["title"], score=item["score"])
        if item.get("explanation") is not None:
            message.explanation.update(to_jsonable_python(item["explanation"]))
        if item.get("team") is not None:
            message.team = item["team"]
        if item.get("sponsored"):
            message.sponsored, message.campaign_id = True, item["campaign_id"]
        items.append(message)
    return items


class WorkbenchServicer(rpc.WorkbenchServicer):
    """The three calls, each a translation between protobuf and `Service`'s shared calls."""

    def __init__(self, service: Service):
        self.service = service

    async def Search(self, request: pb.SearchRequest, context) -> pb.SearchResponse:  # noqa: N802
        async def answer(state: dict) -> pb.SearchResponse:
            call = check(SearchParameters, q=request.q, k=_optional(request, "k", 10),
                         explain=request.explain, category=_optional(request, "category"),
                         session=_optional(request, "session"), user=_optional(request, "user"))
            found = await self.service.search(state, call)
            reply = pb.SearchResponse(items=_items(found), model_version=found.model_version,
                                      preset_version=found.preset_version, request_id=state["request_id"])
            if found.searched_query is not None:
                reply.searched_query = found.searched_query
            if found.experiment is not None:
                reply.experiment.CopyFrom(pb.Experiment(**found.experiment))
            return reply

        return await self._call("/search", context, answer)

    async def Recommend(self, request: pb.RecommendRequest, context) -> pb.RecommendResponse:  # noqa: N802
        async def answer(state: dict) -> pb.RecommendResponse:
            call = check(RecommendParameters, user_id=request.user_id, k=_optional(request, "k", 10),
                         history=list(request.history), session=_optional(request, "session"),
                         explain=request.explain)
            found, customer = await self.service.recommend(state, call)
            reply = pb.RecommendResponse(items=_items(found), model_version=found.model_version,
                                         preset_version=found.preset_version, request_id=state["request_id"],
                                         user_id=customer)
            if found.fallback is not None:
                reply.fallback = found.fallback
            return reply

        return await self._call("/recommend", context, answer)

    async def Similar(self, request: pb.SimilarRequest, context) -> pb.SimilarResponse:  # noqa: N802
        async def answer(state: dict) -> pb.SimilarResponse:
            call = check(SimilarParameters, product_id=request.product_id, k=_optional(request, "k", 10))
            found = await self.service.similar(state, call)
            return pb.SimilarResponse(items=_items(found), model_version=found.model_version,
                                      preset_version=found.preset_version, request_id=state["request_id"])

        return await self._call("/similar", context, answer)

    async def _call(self, endpoint: str, context, answer: Callable[[dict], Awaitable[Message]]) -> Message:
        """Check the key, answer, map errors to status codes and record the call's metrics."""
        started = time.perf_counter()
        metadata = {name: value for name, value in context.invocation_metadata() or ()
                    if isinstance(value, str)}
        request_id = metadata.get(REQUEST_ID_METADATA, "")[:64] or uuid.uuid4().hex
        state = {"request_id": request_id}
        status = 500
        # With the status, not in initial metadata sent ahead: that took one more write per call.
        echoed = ((REQUEST_ID_METADATA, request_id),)
        context.set_trailing_metadata(echoed)
        try:
            self.service.check_key(metadata.get(KEY_METADATA), state, where=f"the {KEY_METADATA} metadata")
            reply = await answer(state)
        except KeyRejected as error:
            status, code, message = 401, grpc.StatusCode.UNAUTHENTICATED, str(error)
        except InvalidParameters as error:
            status, code, message = 422, grpc.StatusCode.INVALID_ARGUMENT, str(error)
        except LookupError as error:
            status, code, message = 404, grpc.StatusCode.NOT_FOUND, str(error)
        except Exception:  # noqa: BLE001 - the client gets a status, the log gets the traceback
            logger.exception("could not answer a %s call", endpoint)
            code, message = grpc.StatusCode.INTERNAL, f"the service could not answer; request id {request_id}"
        else:
            status = 200
            return reply
        finally:
            try:
                self.service.record(endpoint, status, (time.perf_counter() - started) * 1000, state,
                                    request_id)
            except Exception:  # noqa: BLE001 - metrics must never fail a request
                logger.exception("could not record the metrics of a request")
        await context.abort(code, message, echoed)


async def serve(host: str = "127.0.0.1", port: int = 50051, *, stop: asyncio.Event | None = None,
                ready: Callable[[int], None] | None = None, **options) -> None:
    """Serve until `stop` is set (default: forever), then let calls in flight finish and flush the
    writers. `ready(port)` is called once the server listens (the port bound: `port` 0 picks a free
    one). `options` go to `recsys.serving.service.running_service` (url, engine, compute_threads,
    metrics_interval_s, key_refresh_s, alerts_interval_s, follow_s)."""
    async with running_service(**options) as service:
        server = grpc.aio.server()
        rpc.add_WorkbenchServicer_to_server(WorkbenchServicer(service), server)
        bound = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        try:
            if ready is not None:
                ready(bound)
            if stop is None:
                await server.wait_for_termination()
            else:
                await stop.wait()
        finally:
            await server.stop(GRACE_S)


class ServerThread:
    """The gRPC service in a thread with its own event loop, for tests and benchmarks.

    >>> server = ServerThread(url=url, engine=engine, alerts_interval_s=None).start()  # doctest: +SKIP
    >>> server.port  # doctest: +SKIP
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options):
        self.host, self.port, self.options = host, port, options
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="grpc-service", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await serve(self.host, self.port, stop=self._stop, ready=self._listening, **self.options)

        try:
            asyncio.run(main())
        except BaseException as error:  # noqa: BLE001 - handed to the thread that waits in start()
            self._failure = error
        finally:
            self._ready.set()

    def _listening(self, port: int) -> None:
        self.port = port
        self._ready.set()

    def start(self, timeout_s: float = 600.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"the gRPC service did not start within {timeout_s:.0f} s")
        if self._failure is not None:
            raise RuntimeError("the gRPC service could not start") from self._failure
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop serving and wait for the writers' last flush."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
