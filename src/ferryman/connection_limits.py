"""Deadlines and a cap on client connections, for every Ferryman HTTP server.

uvicorn closes a keep-alive connection left idle after a response, but puts no deadline on
a connection's first request, on a request head or on a body: a client sending one header
line every few seconds (slowloris) or a body a few bytes at a time (R-U-Dead-Yet) holds a
connection, its file descriptor and its buffers as long as it likes. Measured on a replica:
500 + 500 such connections (slowhttptest) held 1,018 descriptors for the whole attack, and
under ``ulimit -n 900`` every normal request failed.

:class:`GuardedServer` runs the replica, the gateway and the control plane with these rules
(``Settings.connections``):

- a request head must be complete ``head_timeout_s`` after the connection opened or the
  head's first byte arrived;
- a body has ``body_timeout_s`` after its head, plus one second for every
  ``body_min_rate_bytes_s`` bytes that arrive (Apache mod_reqtimeout's rule: a client that
  keeps that average rate never times out, a trickle does);
- an idle keep-alive connection closes after ``idle_timeout_s``;
- at most ``max_connections`` are open, fewer if the fd limit (raised to its hard limit as
  far as needed at start) cannot hold them. One more closes an idle keep-alive connection,
  else the request nearest its deadline (the oldest slow one; a fresh connection is the
  newest), else, when all are working on requests, the newcomer.

A late head, or a late body no response was started for, is answered 408 and the
connection closed; the app sees a disconnect. Deadlines are checked on the server's tick
(every 0.1 s, a comparison per open connection), so a request pays a few attribute writes
and no timer of its own, and connections past their deadline are closed a few at a time
rather than hundreds in one callback.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import logging
import math
import resource
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ferryman.config import ConnectionSettings
from ferryman.errors import InvalidInput

logger = logging.getLogger(__name__)

FD_RESERVE = 128
"""Descriptors kept for what is not a client connection: listening sockets, the database,
model files, logs, pipes, the gateway's pool beyond one connection per client."""
MIN_CONNECTIONS = 16
_LOG_EVERY_S = 60.0

_WAITING, _HEAD, _BODY, _DONE = range(4)
"""Where a connection is: opened and silent, inside a head, inside a body, request read."""


def _timeout_reply(message: str) -> bytes:
    body = b'{"error":"%s"}' % message.encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )


class ConnectionGuard:
    """The rules of one server: its deadlines, its cap, and what it has closed."""

    def __init__(self, limits: ConnectionSettings, fds_per_connection: int = 1) -> None:
        self.limits = limits
        self.fds_per_connection = fds_per_connection
        self.max_connections = limits.max_connections
        self.body_s_per_byte = 1.0 / limits.body_min_rate_bytes_s
        self.head_reply = _timeout_reply(
            f"the request head was not complete within {limits.head_timeout_s:g} s; "
            "send the request line and headers at once"
        )
        self.body_reply = _timeout_reply(
            f"the request body did not arrive within {limits.body_timeout_s:g} s plus 1 s per "
            f"{limits.body_min_rate_bytes_s} bytes; send it faster"
        )
        self.closed_late = 0
        self.closed_at_cap = 0
        self._logged_at = time.monotonic()
        self._logged = (0, 0)

    def fit_fd_limit(self) -> None:
        """Raise the fd soft limit as far as the cap needs, and lower the cap to what fits."""
        wanted = self.limits.max_connections * self.fds_per_connection + FD_RESERVE
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
                soft = max(soft, target)
            except (ValueError, OSError) as error:  # a hard limit the kernel caps lower
                logger.warning("could not raise the fd limit from %d: %s", soft, error)
        room = (soft - FD_RESERVE) // self.fds_per_connection
        self.max_connections = max(MIN_CONNECTIONS, min(self.limits.max_connections, room))
        if self.max_connections < self.limits.max_connections:
            logger.warning(
                "at most %d connections: the fd limit is %d (hard %d); raise it (ulimit -n) "
                "for max_connections=%d",
                self.max_connections,
                soft,
                hard,
                self.limits.max_connections,
            )

    def admit(self, newcomer: GuardedHttpProtocol, connections: set[Any]) -> None:
        """Past the cap, close an idle connection, else the slow request nearest its deadline."""
        if len(connections) <= self.max_connections:
            return
        victim = newcomer
        for connection in connections:
            if connection.timeout_keep_alive_task is not None:  # idle, between requests
                victim = connection
                break
            if connection.deadline < victim.deadline:
                victim = connection
        self.closed_at_cap += victim.expire()

    def sweep(self, connections: Iterable[Any], now: float) -> None:
        """Close the connections past their deadline; time the idle ones uvicorn does not."""
        late = []
        for connection in connections:
            if connection.deadline < now:
                late.append(connection)
            elif connection.deadline == math.inf and connection.is_idle_untimed():
                connection.deadline = now + self.limits.idle_timeout_s
        self.closed_late += sum(connection.expire() for connection in late)
        self._log((self.closed_late, self.closed_at_cap))

    def _log(self, counts: tuple[int, int]) -> None:
        if counts == self._logged or time.monotonic() - self._logged_at < _LOG_EVERY_S:
            return
        self._logged_at = time.monotonic()
        logger.warning(
            "closed %d slow connections past their deadline and %d at the cap of %d (%.0f s)",
            counts[0] - self._logged[0],
            counts[1] - self._logged[1],
            self.max_connections,
            _LOG_EVERY_S,
        )
        self._logged = counts


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the guard's deadlines on heads and bodies."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.deadline = math.inf
        self.phase = _WAITING
        # Copied here: read on every request, where each attribute hop counts.
        self._now = self.loop.time
        self._head_s = guard.limits.head_timeout_s
        self._body_s = guard.limits.body_timeout_s
        self._s_per_byte = guard.body_s_per_byte

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline = self._now() + self._head_s
        self.guard.admit(self, self.connections)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.phase = _HEAD
        self.deadline = self._now() + self._head_s

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None:  # its task has not run yet: the class decides its send
            self.cycle.__class__ = OneWriteCycle
        self.body_begins()

    def on_body(self, body: bytes) -> None:
        self.body_arrives(len(body))
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.request_read()

    def body_begins(self) -> None:
        """The request's head is complete: its body's deadline starts."""
        self.phase = _BODY
        self.deadline = self._now() + self._body_s

    def body_arrives(self, size: int) -> None:
        """``size`` more bytes of body: the deadline moves on by the minimum rate's time."""
        self.deadline += size * self._s_per_byte

    def request_read(self) -> None:
        """The whole request is read: the app's own deadlines hold from here."""
        self.phase = _DONE
        self.deadline = math.inf

    def is_idle_untimed(self) -> bool:
        """Answered and waiting, with uvicorn's keep-alive timer cancelled: by bytes that
        began no request (blank lines), or by the end of a body that came after its answer."""
        cycle = self.cycle
        return (
            self.phase == _DONE
            and self.timeout_keep_alive_task is None
            and cycle is not None
            and cycle.response_complete
            and not self.pipeline
        )

    def expire(self) -> bool:
        """Close the connection, with a 408 when a request is late and nothing answered it.

        False when it stays open (a request queued behind a running one is not late: its
        body is not read yet) or was closing already.
        """
        if self.pipeline and self.phase == _BODY:
            self.deadline = self._now() + self._body_s + 1
            return False
        self.deadline = math.inf
        self.connections.discard(self)  # counted out now, not when the loop reports it closed
        if self.transport.is_closing():
            return False
        cycle = self.cycle
        if self.phase == _HEAD and (cycle is None or cycle.response_complete):
            self.transport.write(self.guard.head_reply)
        elif self.phase == _BODY and not cycle.response_started:
            self.transport.write(self.guard.body_reply)
        self.transport.close()
        return True


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle, writing a response's head with its first body part.

    uvicorn writes the status line and headers as soon as ``http.response.start`` is sent,
    then each body part: two writes, two packets and two wake-ups of the client for every
    small answer. Here the head of an answer with a ``content-length`` waits for the first
    body part (an app sends it next), so a whole answer is one write; a stream's head goes at
    once. Everything else, checks included, is uvicorn's own ``send``.
    """

    _head = b""

    async def send(self, message: Any) -> None:
        transport = self.transport
        if not self.response_started:  # uvicorn checks the message and builds the head
            self.transport = held = _Held(transport)  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            if self.chunked_encoding is False:  # sized: the body follows at once
                self._head = held.data
            elif held.data:  # a stream: its head goes now, before the first part is ready
                transport.write(held.data)
            return
        head, self._head = self._head, b""
        if not head:
            await super().send(message)
            return
        self.transport = joined = _Held(transport, head)  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        if joined.data and not transport.is_closing():  # nothing written: a HEAD request
            transport.write(joined.data)


class _Held:
    """A transport stand-in for one ``send``. Without ``head``, what is written is held in
    ``data``; with it, the first write goes out as ``head`` + bytes, and later ones as they
    are (``data`` keeps the head until it is written)."""

    def __init__(self, transport: asyncio.Transport, head: bytes = b"") -> None:
        self.transport = transport
        self.is_holding = not head
        self.data = head

    def write(self, data: bytes) -> None:
        if self.is_holding:
            self.data += data
        else:
            self.transport.write(self.data + data if self.data else data)
            self.data = b""

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        if self.data and not self.is_holding:
            self.transport.write(self.data)
            self.data = b""
        self.transport.close()


class GuardedServer(uvicorn.Server):
    """A uvicorn server whose connections keep the guard's rules.

    It takes over the config's HTTP protocol (httptools, guarded), keep-alive timeout and
    WebSockets (off: no Ferryman server speaks them). ``fds_per_connection`` is 2 where each
    client connection may need one onward (the gateway's to a replica). It refuses a
    non-loopback bind without TLS (see :func:`check_tls_bind`).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        limits: ConnectionSettings,
        fds_per_connection: int = 1,
        protocol: type[GuardedHttpProtocol] = GuardedHttpProtocol,
    ) -> None:
        check_tls_bind(config.host, config.ssl_certfile is not None, limits.insecure_http)
        if config.ssl_certfile is not None:  # uvicorn calls a factory even without TLS
            config.ssl_ciphers = TLS12_CIPHERS
            config.ssl_context_factory = _tls_profile
        self.guard = ConnectionGuard(limits, fds_per_connection)
        config.http = cast(type[asyncio.Protocol], partial(protocol, guard=self.guard))
        config.ws = "none"
        config.timeout_keep_alive = math.ceil(limits.idle_timeout_s)
        super().__init__(config)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.guard.fit_fd_limit()
        await super().startup(sockets)

    async def on_tick(self, counter: int) -> bool:
        self.guard.sweep(self.server_state.connections, asyncio.get_running_loop().time())
        return await super().on_tick(counter)


class Listener(Protocol):
    """Where a server listens, and its certificate: the serving, gateway and control
    settings each have these."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls_cert_file(self) -> Path | None: ...
    @property
    def tls_key_file(self) -> Path | None: ...


App = Callable[..., Awaitable[None]]
"""An ASGI application: ``await app(scope, receive, send)``."""


def server_config(
    app: App,
    listener: Listener,
    *,
    graceful_timeout_s: float | None = None,
    log_level: str | None = None,
) -> uvicorn.Config:
    """The one uvicorn configuration of the replica, the gateway and the control plane.

    It listens where ``listener`` says, over HTTPS when it names a certificate and key;
    uvloop when installed; the app's lifespan runs; no ``server`` header; the client's
    address is the peer's, never one from ``X-Forwarded-For``; no access log, and uvicorn's
    own records go to the handlers Ferryman configured (``log_level``: the least level of
    them; None: as configured). A
    :class:`GuardedServer` over it checks the bind and sets the TLS profile.
    ``graceful_timeout_s`` bounds the wait for requests in flight at shutdown (rounded up to
    whole seconds; None: no bound).
    """
    cert, key = listener.tls_cert_file, listener.tls_key_file
    if (cert is None) != (key is None):
        raise InvalidInput("TLS needs both tls_cert_file and tls_key_file")
    return uvicorn.Config(
        app,
        host=listener.host,
        port=listener.port,
        ssl_certfile=None if cert is None else str(cert),
        ssl_keyfile=None if key is None else str(key),
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=(
            None if graceful_timeout_s is None else math.ceil(graceful_timeout_s)
        ),
    )


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on ``host:port`` (so a new server can bind it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
"""TLS 1.2 suites: forward secrecy and AEAD only (Mozilla's "intermediate" set); uvicorn's
default ("TLSv1") also offers CBC-SHA1 and static-RSA suites. TLS 1.3 suites are all strong."""


def _tls_profile(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's context (cert, key, the ciphers above), and nothing older than TLS 1.2."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def check_tls_bind(host: str, has_tls: bool, is_insecure_allowed: bool) -> None:
    """Off loopback means TLS: a bearer token sent over plain HTTP on a network is readable
    by anyone on the way. Refuse such a bind, or warn loudly when it is asked for by name."""
    if has_tls or is_loopback(host):
        return
    if not is_insecure_allowed:
        raise InvalidInput(
            f"refusing to serve plain HTTP on {host!r}, off loopback: tokens and data would "
            "cross the network in clear; give a TLS certificate and key (tls_cert_file, "
            "tls_key_file), bind 127.0.0.1, or pass --insecure-http "
            "(FERRYMAN_CONNECTIONS__INSECURE_HTTP=true) if a proxy terminates TLS"
        )
    logger.warning(
        "serving plain HTTP on %s off loopback (--insecure-http): tokens and data cross the "
        "network in clear; terminate TLS in front of this server",
        host,
    )


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (IPv6 in brackets or not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
