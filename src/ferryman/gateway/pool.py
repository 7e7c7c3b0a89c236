"""Keep-alive HTTP/1.1 connections to replicas on asyncio protocols with httptools.

The gateway's replica path is one request line, a few headers and a body out, and a whole
answer back, so a small client on the same parser uvicorn uses costs far less per request
than a general-purpose one (bench/gateway measures this one against aiohttp and httpx).
A send fails in one of four ways, and only the first two are safe to retry:

    NotReached (503)        no connection could be made (refused, connect timeout)
    Unread (503)            the replica's kernel reset the connection before any answer:
                            the request was still unread in its socket (see below)
    BadGateway (502)        the connection closed or the answer was malformed after the
                            request was written: the replica may have processed it
    DeadlineExceeded (504)  no whole answer within try_timeout_s (default request_timeout_s)

Unread and BadGateway are told apart by how the connection ended. A replica that read the
request and then died (a poison input that crashes it, RELIABILITY F3b) leaves its receive
buffer empty, and the kernel ends the connection with a FIN: end of file, maybe processed.
A replica killed before it read the request (``kill -9`` while the request was on its way,
or its process still being torn down when the request arrived: RELIABILITY F1) has the
request in its receive buffer when the kernel closes the socket, and a socket closed with
unread data is reset (RFC 9293 3.6.1; Linux does so), as is one written after it closed.
A reset with no answer byte therefore means the replica never had the whole request.
"""

from __future__ import annotations

import asyncio
import re
import select
import ssl
from collections.abc import Collection
from typing import cast
from urllib.parse import urlsplit

import httptools

from ferryman.config import GatewaySettings
from ferryman.errors import BadGateway, DeadlineExceeded, InvalidInput
from ferryman.gateway.messages import Answer, RawHeaders
from ferryman.gateway.transport import (
    RESPONSE_DROPPED,
    NotReached,
    Unread,
    Upstream,
)
from ferryman.types import Clock

_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")


class Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, parses the answer with httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.is_closed = False
        self.idle_since = 0.0
        self._poller: select.poll | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._headers: RawHeaders = []
        self._body: list[bytes] = []
        self._is_answering = False  # a byte of the current answer has arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream connection's transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)

    def data_received(self, data: bytes) -> None:
        self._is_answering = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadGateway(f"the replica sent a malformed answer ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        if isinstance(exc, ConnectionError) and not self._is_answering:
            self._fail(Unread("the replica reset the connection before reading the request"))
        else:
            self._fail(BadGateway("the replica closed the connection mid-request"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        headers = [h for h in self._headers if h[0] not in RESPONSE_DROPPED]
        answer = Answer(self._parser.get_status_code(), headers, b"".join(self._body))
        if not self._parser.should_keep_alive():
            self.close()
        self._headers, self._body = [], []
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(answer)

    def send(self, data: bytes) -> asyncio.Future[Answer]:
        """Write one whole request; the future resolves with the whole answer."""
        if self.transport is None or self.is_closed:
            raise BadGateway("the connection to the replica is closed")
        self._answer = asyncio.get_running_loop().create_future()
        self._is_answering = False
        self.transport.write(data)
        return self._answer

    def is_stale(self) -> bool:
        """True if the idle connection has input waiting: the replica closed it (or died).

        One poll(2) before reuse; without it, a request written on a connection whose FIN
        the loop has not read yet would fail after it was sent, and could not be retried.
        """
        if self._poller is None or self.is_closed:
            return True
        return bool(self._poller.poll(0))

    def close(self) -> None:
        self.is_closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)


class ConnectionPool:
    """Idle keep-alive connections per replica, bounded; a :class:`Transport`."""

    def __init__(self, settings: GatewaySettings, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock
        secret = settings.replica_token
        self._credentials = b"" if secret is None else credentials_line(secret.get_secret_value())
        self._try_timeout_s = settings.try_timeout_s or settings.request_timeout_s
        self._idle: dict[str, list[Connection]] = {}
        self._addresses: dict[str, tuple[str, int, bool, bytes]] = {}

    async def send(self, backend: str, request: Upstream) -> Answer:
        connection = self._idle_connection(backend) or await self._connect(backend)
        data = _encode(request, self._address(backend)[3], self._credentials)
        answer = connection.send(data)
        # One timer on the loop rather than asyncio.timeout's context: the per-try deadline
        # fails the answer's future, which closes the connection below.
        timer = asyncio.get_running_loop().call_later(self._try_timeout_s, self._late, answer)
        try:
            result = await answer
        except BaseException:
            connection.close()
            raise
        finally:
            timer.cancel()
        self._release(backend, connection)
        return result

    def _late(self, answer: asyncio.Future[Answer]) -> None:
        if not answer.done():
            answer.set_exception(
                DeadlineExceeded(
                    f"the replica did not answer within {self._try_timeout_s:g} s "
                    "(gateway.try_timeout_s, by default request_timeout_s); it is skipped "
                    "for backend_recheck_s"
                )
            )

    def retain(self, backends: Collection[str]) -> None:
        for backend in [b for b in self._idle if b not in backends]:
            for connection in self._idle.pop(backend):
                connection.close()
            self._addresses.pop(backend, None)

    async def close(self) -> None:
        self.retain(())

    def _idle_connection(self, backend: str) -> Connection | None:
        idle = self._idle.get(backend)
        oldest = self._now() - self._settings.pool_keepalive_s
        while idle:
            connection = idle.pop()
            if connection.idle_since >= oldest and not connection.is_stale():
                return connection
            connection.close()
        return None

    async def _connect(self, backend: str) -> Connection:
        host, port, is_tls, _ = self._address(backend)
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if is_tls else None
        try:
            async with asyncio.timeout(self._settings.connect_timeout_s):
                _, connection = await loop.create_connection(Connection, host, port, ssl=context)
        except (OSError, TimeoutError) as exc:
            raise NotReached("the replica could not be reached") from exc
        return connection

    def _release(self, backend: str, connection: Connection) -> None:
        idle = self._idle.setdefault(backend, [])
        if connection.is_closed or len(idle) >= self._settings.pool_connections_per_backend:
            connection.close()
            return
        connection.idle_since = self._now()
        idle.append(connection)

    def _address(self, backend: str) -> tuple[str, int, bool, bytes]:
        address = self._addresses.get(backend)
        if address is None:
            parts = urlsplit(backend)
            host, port = parts.hostname or "", parts.port or 80
            address = (host, port, parts.scheme == "https", parts.netloc.encode("ascii"))
            self._addresses[backend] = address
        return address

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()


def credentials_line(secret: str) -> bytes:
    """``authorization: Bearer <secret>`` as a header line; a secret that could end the line
    early (or is not plain ASCII) is refused."""
    if not secret or not _TOKEN_CHARS.fullmatch(secret):
        raise InvalidInput(
            "gateway.replica_token holds characters a header cannot carry; use letters, "
            "digits and -._~+/= only (ferryman up generates one)"
        )
    return b"authorization: Bearer " + secret.encode("ascii") + b"\r\n"


def _encode(request: Upstream, host: bytes, credentials: bytes = b"") -> bytes:
    """The request as HTTP/1.1 bytes; header values were parsed by httptools (no CR/LF).
    ``credentials`` is the whole ``authorization`` line of the fleet's secret, or empty."""
    lines = [
        f"{request.method} {request.path} HTTP/1.1\r\n".encode("ascii"),
        b"host: " + host + b"\r\n",
        credentials,
        b"content-length: " + str(len(request.body)).encode() + b"\r\n",
    ]
    for name, value in request.headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    lines.append(request.body)
    return b"".join(lines)
