"""The OpenAI-compatible surface of a language-model replica; HTTP <-> generation plane.

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions``, ``GET /v1/models``, plus
the V2 health paths, ``/metrics`` and the payload log (``/ferryman/v1/payloads``: the ids
of the completions answered, which feedback rates) that runtimes and the control plane call
on every replica.
``stream: true`` answers as server-sent events, each token's text sent as soon as the engine
gives it; a client that goes away cancels its generation and frees its slot. The engine
runs ahead of the socket (:func:`ferryman.serving.generation.ready_batches`): tokens made
while the previous write was going out leave together, one event each in one write, and
the events of plain tokens are filled into bytes made once per stream (no JSON document
per token). Errors have OpenAI's shape, ``{"error": {"message", "type", "code"}}``. Every
route but liveness takes the replica's token when it has one (:class:`RequireToken`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager, suppress
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ferryman.config import Settings
from ferryman.engines.generation import GenerationEngine, SamplingParams
from ferryman.errors import FerrymanError, InvalidInput, PayloadTooLarge, Unavailable
from ferryman.protocol.openai import (
    ChatRequest,
    CompletionRequest,
    GenerationRequest,
    chunk_body,
    completion_body,
    error_body,
    parse_request,
    usage,
)
from ferryman.serving.auth import (
    CHALLENGE,
    LIVENESS_PATH,
    REFUSED,
    expected_credentials,
    is_authorized,
)
from ferryman.serving.generation import GenerationPlane, Piece, Tally, ready_batches
from ferryman.serving.metrics import ReplicaIdentity
from ferryman.serving.payloads import PayloadLog, PayloadPolicy

REQUEST_ID_HEADER = "ferryman-request-id"

logger = logging.getLogger(__name__)


def create_generation_app(
    settings: Settings, engine: GenerationEngine, identity: ReplicaIdentity
) -> Starlette:
    """The ASGI app of a replica serving a language model; the model loads in its lifespan."""
    serving = settings.serving
    payloads = PayloadLog(PayloadPolicy(serving.payload_log_capacity, input_sample_rate=0.0))
    plane = GenerationPlane(identity, engine, settings.generation, payloads)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await plane.load()
        try:
            yield
        finally:
            plane.is_draining = True
            await plane.unload()

    app = Starlette(
        routes=list(ROUTES),
        exception_handlers={FerrymanError: render_error, HTTPException: render_error},
        lifespan=lifespan,
    )
    app.state.plane = plane
    app.state.max_body_bytes = settings.serving.max_body_bytes
    credentials = expected_credentials(serving)
    if credentials is not None:
        app.add_middleware(RequireToken, credentials=credentials)
    return app


class RequireToken:
    """The replica's token on every route but liveness, as on a tensor replica
    (:mod:`ferryman.serving.auth`): under ``ferryman up`` only the gateway and the control
    plane hold it. A refusal is a 401 in OpenAI's shape."""

    def __init__(self, app: ASGIApp, credentials: bytes) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_authorized(scope):
            await self.app(scope, receive, send)
            return
        body = orjson.dumps(error_body(REFUSED.message, REFUSED.status_code))
        headers = [(b"content-type", b"application/json"), CHALLENGE]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _is_authorized(self, scope: Scope) -> bool:
        if scope["path"] == LIVENESS_PATH and scope["method"] == "GET":
            return True
        presented = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        return is_authorized(presented, self.credentials)


async def completions(request: Request) -> Response:
    return await _generate(request, parse_request(CompletionRequest, await _body(request)))


async def chat_completions(request: Request) -> Response:
    return await _generate(request, parse_request(ChatRequest, await _body(request)))


async def models(request: Request) -> Response:
    plane = _plane(request)
    info = plane.engine.metadata()
    entry = {
        "id": plane.identity.model,
        "object": "model",
        "created": 0,
        "owned_by": "ferryman",
        "version": plane.identity.version,
        "engine": info.engine,
        "context_length": info.context_length,
    }
    return JSONResponse({"object": "list", "data": [entry]})


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    plane = _plane(request)
    if not plane.is_ready or plane.is_draining:
        raise Unavailable(f"{plane.identity.describe()} is not ready", retry_after_s=1)
    return JSONResponse({"ready": True})


async def metrics(request: Request) -> Response:
    body = _plane(request).metrics.exposition()
    return Response(body, media_type="text/plain; version=0.0.4")


async def payloads(request: Request) -> Response:
    """Recent completion records for the control plane: ``?after=SEQ&limit=N``."""
    after = _query_int(request, "after", 0)
    limit = _query_int(request, "limit", 1000)
    return JSONResponse(_plane(request).payloads.read(after, limit))


def _query_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, str(default))
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise InvalidInput(f"query parameter {name}={value[:32]!r} must be a whole number ≥ 0")
    return int(value)


async def render_error(request: Request, exc: Exception) -> Response:
    """The one error renderer of this app, in OpenAI's shape."""
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    elif isinstance(exc, FerrymanError):
        status, message = exc.status_code, exc.message
    else:
        status, message = 500, "the replica failed; see its log"
    headers = {}
    if isinstance(exc, Unavailable) and exc.retry_after_s is not None:
        headers["retry-after"] = str(exc.retry_after_s)
    plane = request.app.state.plane
    if request.url.path.startswith("/v1/") and request.method == "POST":
        plane.metrics.answered(status)
    return JSONResponse(error_body(message, status), status_code=status, headers=headers)


async def _generate(request: Request, body: GenerationRequest) -> Response:
    plane = _plane(request)
    if body.model not in (plane.identity.model, ""):
        logger.debug("request names model %r; serving %s", body.model, plane.identity.model)
    params = SamplingParams(
        max_tokens=body.wanted_tokens(plane.limits.default_max_tokens),
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
    )
    is_chat = isinstance(body, ChatRequest)
    prompt = body.text() if isinstance(body, ChatRequest | CompletionRequest) else ""
    # The completion's id is the server's own: feedback (thumbs up or down) names it.
    request_id = ("chatcmpl-" if is_chat else "cmpl-") + uuid.uuid4().hex
    tally, pieces = plane.start(prompt, params, body.stops(), request_id)
    plane.metrics.answered(200)
    headers = {REQUEST_ID_HEADER: request_id}
    if body.stream:
        wants_usage = body.stream_options is not None and body.stream_options.include_usage
        stream = _Stream(request_id, plane.identity.model, is_chat, wants_usage)
        return EventStream(_events(stream, pieces, tally), request_id)
    text: list[str] = []
    finish: str | None = None
    async with aclosing(pieces):
        async for piece in pieces:
            text.append(piece.text)
            finish = piece.finish or finish
    answer = completion_body(
        request_id, plane.identity.model, is_chat=is_chat, text="".join(text), finish=finish
    )
    answer["usage"] = usage(tally.prompt_tokens, tally.completion_tokens)
    return JSONResponse(answer, headers=headers)


class _Stream:
    """What every chunk of one answer repeats, and whether usage ends the stream.

    A plain token's event is ``head + JSON string of the text + tail``, both made once from
    :func:`chunk_body` itself, so the bytes are those the whole document would encode to.
    """

    __slots__ = ("_head", "_tail", "is_chat", "model", "request_id", "wants_usage")

    def __init__(self, request_id: str, model: str, is_chat: bool, wants_usage: bool) -> None:
        self.request_id = request_id
        self.model = model
        self.is_chat = is_chat
        self.wants_usage = wants_usage
        marker = orjson.dumps(_MARKER)
        self._head, self._tail = _event(self.chunk(_MARKER, None)).split(marker)

    def chunk(self, text: str, finish: str | None) -> dict[str, Any]:
        return chunk_body(
            self.request_id, self.model, is_chat=self.is_chat, text=text, finish=finish
        )

    def token_event(self, text: str) -> bytes:
        """The event of a token's text (no finish, not the first chat chunk)."""
        return self._head + orjson.dumps(text) + self._tail


_MARKER = "\ue000text\ue000"
"""Stands for a token's text in a stream's event template (a private-use character)."""


async def _events(
    stream: _Stream, pieces: AsyncGenerator[Piece], tally: Tally
) -> AsyncGenerator[bytes]:
    is_first = True
    async with aclosing(ready_batches(pieces)) as batches:
        async for batch in batches:
            events = []
            for piece in batch:
                if not (piece.text or piece.finish):
                    continue
                if piece.finish is None and not (is_first and stream.is_chat):
                    events.append(stream.token_event(piece.text))
                    is_first = False
                    continue
                chunk = stream.chunk(piece.text, piece.finish)
                if is_first and stream.is_chat:
                    # OpenAI's first chat chunk names the role; it goes with the first token,
                    # so a stream's first bytes mark its time to first token (the gateway's).
                    chunk["choices"][0]["delta"]["role"] = "assistant"
                is_first = False
                events.append(_event(chunk))
            if events:
                yield b"".join(events)
    if stream.wants_usage:
        last = stream.chunk("", None)
        last["choices"] = []
        last["usage"] = usage(tally.prompt_tokens, tally.completion_tokens)
        yield _event(last)
    yield b"data: [DONE]\n\n"


def _event(document: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(document) + b"\n\n"


class EventStream(Response):
    """Server-sent events, each sent as it is made; a disconnect closes the source at once.

    Starlette's StreamingResponse leaves an abandoned generator to the garbage collector;
    here the source is closed in ``finally`` (which frees the generation slot) as soon as
    the client's disconnect arrives.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes], request_id: str) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
        ]
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watcher):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await self._events.aclose()

    async def _produce(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async for event in self._events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _body(request: Request) -> bytes:
    limit: int = request.app.state.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes (serving.max_body_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _plane(request: Request) -> GenerationPlane:
    plane: GenerationPlane = request.app.state.plane
    return plane


ROUTES = (
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/v2/health/live", live, methods=["GET"]),
    Route("/v2/health/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/ferryman/v1/payloads", payloads, methods=["GET"]),
)
