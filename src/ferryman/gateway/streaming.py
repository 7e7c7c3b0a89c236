"""Relay the OpenAI routes to a replica and its answer back as it arrives, never buffered.

``/endpoints/ENDPOINT/v1/{chat/completions,completions,models}``: the endpoint comes from
the path (the gateway routes by path and headers only; it never parses a body), so an
OpenAI client uses ``base_url=http://GATEWAY/endpoints/ENDPOINT/v1``. The variant is
picked by the route table as for every request; each answer byte is passed on as soon as
the replica sends it, so server-sent events reach the client token by token. A client that
goes away closes the replica connection, which cancels the generation there and frees its
slot. Errors have OpenAI's shape. A refused connection is retried on the next replica of
the variant (it never reached one); nothing else is retried.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from ferryman.config import GatewaySettings
from ferryman.errors import BadGateway, DeadlineExceeded, FerrymanError, NotFound, Unavailable
from ferryman.gateway.health import BackendHealth
from ferryman.gateway.holding import Holding
from ferryman.gateway.messages import (
    Message,
    RawHeaders,
    Receive,
    Scope,
    Send,
    check_headers,
    read_body,
)
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.gateway.paths import Target, parse_target
from ferryman.gateway.pool import credentials_line
from ferryman.gateway.proxy import NoLiveBackend
from ferryman.gateway.routes import EndpointRoute, VariantRoute, pick_variant
from ferryman.gateway.transport import REQUEST_DROPPED, RESPONSE_DROPPED, NotReached, Unread
from ferryman.protocol.openai import error_body

logger = logging.getLogger(__name__)

VARIANT_HEADER = b"ferryman-variant"
READ_BYTES = 65536


class StreamRelay:
    """Forwards one OpenAI request and streams the replica's answer to the client."""

    def __init__(
        self,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        health: BackendHealth,
        holding: Holding,
        *,
        route_of: Callable[[str], EndpointRoute],
        draw: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._health = health
        self._holding = holding
        self._route_of = route_of
        self._draw = draw
        self._streams: Counter[str] = Counter()  # open relays per replica
        secret = settings.replica_token
        self._credentials = b"" if secret is None else credentials_line(secret.get_secret_value())
        """The fleet secret's ``authorization`` line: replicas take requests from us only."""

    async def relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request on an OpenAI path (see :func:`is_openai_path`)."""
        response = _Response(send)
        try:
            target = parse_target(scope["method"], scope["path"])
            if target is None:
                raise NotFound(
                    f"no gateway route for {scope['path'][:120]!r}; the OpenAI routes are "
                    "/endpoints/ENDPOINT/v1/chat/completions, /v1/completions and /v1/models"
                )
        except FerrymanError as exc:
            await response.error(exc)
            return
        await self._relay(target, scope, receive, response)

    async def _relay(
        self, target: Target, scope: Scope, receive: Receive, response: _Response
    ) -> None:
        started = time.monotonic()
        status = 500
        in_flight = self._metrics.in_flight_of(target.endpoint)
        in_flight.inc()
        try:
            self._route_of(target.endpoint)  # 404 before reading a body
            check_headers(
                scope["headers"], self._settings.max_header_count, self._settings.max_header_bytes
            )
            body = await self._body(scope, receive)
            work = self._deliver(target, scope["headers"], body, response, started)
            status = await _until_disconnect(work, receive)
        except FerrymanError as exc:
            status = exc.status_code
            await response.error(exc)
        except Exception:  # a bug must still answer in the protocol's shape
            logger.exception("gateway failed relaying %s", target.endpoint)
            await response.error(FerrymanError("the gateway failed; see its log"))
        finally:
            in_flight.dec()
            if response.variant:
                duration_s = time.monotonic() - started
                self._metrics.answered(
                    target.endpoint, response.variant, status, duration_s,
                    sticky_key=response.sticky_key,
                )  # fmt: skip
                if status == 200 and response.first_byte_at is not None:
                    first_s = response.first_byte_at - started
                    self._metrics.first_token.labels(target.endpoint, response.variant).observe(
                        first_s
                    )

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        try:
            async with asyncio.timeout(self._settings.request_timeout_s):
                return await read_body(scope["headers"], receive, self._settings.max_body_bytes)
        except TimeoutError as exc:
            raise DeadlineExceeded("the request body did not arrive in time") from exc

    async def _deliver(
        self, target: Target, raw: RawHeaders, body: bytes, response: _Response, started: float
    ) -> int:
        """Route and send; while the variant has no live replica, hold as the gateway does."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
        draw = self._draw()
        never: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        while True:
            route = self._route_of(target.endpoint)
            variant = pick_variant(route, headers, draw)
            response.variant = variant.name
            key = headers.get(route.sticky_header) if route.sticky_header else None
            response.sticky_key = None if key is None else key.encode("latin-1")
            response.extra = [(VARIANT_HEADER, variant.name.encode())]
            response.gap = self._metrics.inter_token.labels(target.endpoint, variant.name).observe
            try:
                return await self._exchange(_Outgoing(target, variant, raw, body), response)
            except NoLiveBackend:
                # A disconnect cancels this whole coroutine (_until_disconnect), so the
                # holding needs no future of its own for it.
                await self._holding.wait(route, started + route.hold_timeout_s, never)

    async def _exchange(self, request: _Outgoing, response: _Response) -> int:
        """Send to the first replica that takes the connection; stream its answer back."""
        variant = request.variant
        for backend in self._by_load(self._health.live(variant.backends)):
            try:
                reader, writer = await self._connect(backend)
            except NotReached:
                self._health.mark_down(backend)
                continue
            self._streams[backend] += 1
            try:
                host = urlsplit(backend).netloc.encode("ascii")
                writer.write(request.encode(host, self._credentials))
                return await _stream_answer(reader, response, self._settings.request_timeout_s)
            except Unread:  # never processed (see ferryman.gateway.pool): the next replica
                self._health.mark_down(backend)
                continue
            finally:
                writer.close()
                self._streams[backend] -= 1
                self._streams = +self._streams  # keeps only replicas with streams open
        raise NoLiveBackend(variant.name)

    def _by_load(self, live: list[str]) -> list[str]:
        """Replicas with the fewest open streams first (each has its own slots); ties in
        a random rotation."""
        turn = int(self._draw() * len(live)) if live else 0
        rotated = live[turn:] + live[:turn]
        return sorted(rotated, key=self._streams.__getitem__)

    async def _connect(self, backend: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        parts = urlsplit(backend)
        context = ssl.create_default_context() if parts.scheme == "https" else None
        try:
            async with asyncio.timeout(self._settings.connect_timeout_s):
                return await asyncio.open_connection(parts.hostname, parts.port or 80, ssl=context)
        except (OSError, TimeoutError) as exc:
            raise NotReached("the replica could not be reached") from exc


class _Response:
    """The client's side: start once, then body pieces as they come."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.is_started = False
        self.extra: RawHeaders = []
        self.variant = ""
        self.sticky_key: bytes | None = None
        """The sticky key that placed the request (its share of the judged traffic is capped)."""
        self.first_byte_at: float | None = None
        self.last_byte_at = 0.0
        self.is_stream = False
        self.gap: Callable[[float], None] | None = None
        """Observes the time between two pieces of a 200 event stream."""

    async def start(self, status: int, headers: RawHeaders) -> None:
        self.is_started = True
        is_events = (b"content-type", b"text/event-stream; charset=utf-8") in headers
        self.is_stream = status == 200 and is_events
        await self._send(
            {"type": "http.response.start", "status": status, "headers": headers + self.extra}
        )

    async def body(self, chunk: bytes, more: bool) -> None:
        if chunk and self.is_stream:
            now = time.monotonic()
            if self.first_byte_at is None:
                self.first_byte_at = now
            elif self.gap is not None:
                self.gap(now - self.last_byte_at)
            self.last_byte_at = now
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def error(self, exc: FerrymanError) -> None:
        if self.is_started:  # the answer is under way: all that can be done is to end it
            await self.body(b"", False)
            return
        import json  # noqa: PLC0415 - only errors pay for it

        headers: RawHeaders = [(b"content-type", b"application/json")]
        if isinstance(exc, Unavailable) and exc.retry_after_s is not None:
            headers.append((b"retry-after", str(exc.retry_after_s).encode()))
        await self.start(exc.status_code, headers)
        await self.body(json.dumps(error_body(exc.message, exc.status_code)).encode(), False)


class _Parser:
    """httptools callbacks: headers once, then the body pieces of the bytes just fed."""

    def __init__(self) -> None:
        self.headers: RawHeaders = []
        self.pieces: list[bytes] = []
        self.is_head_done = False
        self.is_complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in RESPONSE_DROPPED:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.is_head_done = True

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        self.is_complete = True

    def taken(self) -> bytes:
        """The body bytes of everything fed so far and not taken yet, as one piece."""
        pieces, self.pieces = self.pieces, []
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def _stream_answer(
    reader: asyncio.StreamReader, response: _Response, timeout_s: float
) -> int:
    """Pass the replica's answer on as it arrives: what one read brought (the events the
    replica wrote meanwhile, in as many HTTP chunks) goes out as one piece, as bytes; the
    chunked framing is undone by httptools, never the events parsed."""
    callbacks = _Parser()
    parser = httptools.HttpResponseParser(callbacks)
    loop = asyncio.get_running_loop()
    is_answering = False  # a byte of the answer has arrived (see ferryman.gateway.pool)
    try:
        async with asyncio.timeout(None) as deadline:  # one for the whole answer
            while not callbacks.is_complete:
                deadline.reschedule(loop.time() + timeout_s)
                try:
                    data = await reader.read(READ_BYTES)
                except ConnectionError as exc:
                    if is_answering:
                        raise BadGateway("the replica reset the connection mid-answer") from exc
                    raise Unread("the replica reset the connection before reading it") from exc
                is_answering = True
                deadline.reschedule(None)  # a slow client is not a silent replica
                if not data:
                    raise BadGateway("the replica closed the connection mid-answer")
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    raise BadGateway(f"the replica sent a malformed answer ({exc})") from exc
                if callbacks.is_head_done and not response.is_started:
                    await response.start(parser.get_status_code(), callbacks.headers)
                if callbacks.pieces:
                    await response.body(callbacks.taken(), True)
    except TimeoutError as exc:
        raise DeadlineExceeded(f"the replica sent nothing for {timeout_s:g} s") from exc
    await response.body(b"", False)
    return int(parser.get_status_code())


async def _until_disconnect(work: Coroutine[Any, Any, int], receive: Receive) -> int:
    """Run ``work``; if the client disconnects first, cancel it (closing the replica's side)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
    if not task.done():
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        return 499  # the client closed the request (nginx's code, for the metrics)
    return task.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass(frozen=True, slots=True)
class _Outgoing:
    target: Target
    variant: VariantRoute
    raw_headers: RawHeaders
    body: bytes

    def encode(self, host: bytes, credentials: bytes = b"") -> bytes:
        """The request as HTTP/1.1 bytes for the replica at ``host``; end-to-end headers only
        (never the client's ``authorization``), and ``credentials``, the fleet's line."""
        named = {
            token.strip().lower().encode("latin-1")
            for name, value in self.raw_headers
            if name == b"connection"
            for token in value.decode("latin-1").split(",")
        }
        path = self.target.upstream_path(self.variant.model)
        lines = [
            f"{self.target.method} {path} HTTP/1.1\r\n".encode("ascii"),
            b"host: " + host + b"\r\n",
            credentials,
            b"content-length: " + str(len(self.body)).encode() + b"\r\n",
            b"connection: close\r\n",
        ]
        lines.extend(
            name + b": " + value + b"\r\n"
            for name, value in self.raw_headers
            if name not in REQUEST_DROPPED and name not in named
        )
        lines.append(b"\r\n")
        return b"".join(lines) + self.body
