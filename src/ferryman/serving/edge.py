"""The edge of a replica: header limits, request ids, response headers, metrics, one log line.

A pure ASGI middleware. Every response carries ``ferryman-model-version`` and
``ferryman-request-id``, an id the replica makes (128 random bits): feedback joins answers
by it alone. An id the client sends (``ferryman-request-id`` or ``x-request-id``) is kept
as the request's correlation id, in its payload record and echoed as
``ferryman-correlation-id``; it never names the answer. Inference requests are counted by
status code, timed, and leave a payload record. V2 inference
(``POST /v2/models/{m}[/versions/{v}]/infer``), the hot path, is answered here through
:func:`ferryman.serving.http.infer_v2` without passing through Starlette; every other
request goes on to the app.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferryman.errors import FerrymanError
from ferryman.host_policy import HostPolicy
from ferryman.serving.auth import (
    CHALLENGE,
    LIVENESS_PATH,
    REFUSED,
    expected_credentials,
    is_authorized,
)
from ferryman.serving.dataplane import DataPlane
from ferryman.serving.http import Reply, error_reply, infer_v2, v2_infer_target
from ferryman.serving.limits import ClientDisconnected, HeaderLimits

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"ferryman-request-id"
CORRELATION_HEADER = b"ferryman-correlation-id"
CLIENT_ID_HEADERS = (REQUEST_ID_HEADER, b"x-request-id")
"""A client's own id for a request: kept as its correlation id, never as its request id."""
VERSION_HEADER = b"ferryman-model-version"
CLIENT_CLOSED = 499
"""The status recorded (never sent) when the client left before its body arrived."""
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_INFERENCE_SUFFIXES = ("/infer", ":predict", "/predict", "ModelInfer")
_INTERNAL = FerrymanError("internal error; see the log")


class RequestIds:
    """Request ids of 32 hex digits, 128 random bits each from ``os.urandom``: unguessable,
    so nobody can label (or claim) another client's answer by naming its id.

    Drawn 256 at a time, so one request costs a slice, not a system call.
    """

    BATCH = 256

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool = os.urandom(16 * self.BATCH).hex().encode()
            at = 0
        self._at = at + 32
        return self._pool[at : at + 32]


class Edge:
    """Wraps the app: checks headers, tags responses, counts and answers inference requests."""

    def __init__(self, app: ASGIApp, plane: DataPlane) -> None:
        self.app = app
        self.plane = plane
        settings = plane.settings
        self.limits = HeaderLimits(settings.max_header_bytes, settings.max_header_count)
        self.hosts = HostPolicy.for_server(settings.host, settings.port, settings.allowed_hosts)
        self.version = plane.identity.version.encode()
        self.ids = RequestIds()
        self.credentials = expected_credentials(settings)
        refused = error_reply(REFUSED)
        self.refusal = refused._replace(headers=[*refused.headers, CHALLENGE])

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The request's coroutine: the hot path's, or the one that hands it on.

        A plain function, so the coroutine it returns is awaited by the caller directly:
        one coroutine frame fewer on every request's way in and out.
        """
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        headers = scope["headers"]
        if self.credentials is not None and not self._is_authorized(scope):
            return self._send(send, self.refusal, self._stamp(headers))
        problem = self.limits.check(headers) or self.hosts.refusal(
            headers, scope["method"], scope.get("scheme", "http")
        )
        target = v2_infer_target(scope) if problem is None else None
        if target is not None:
            return self._infer(scope, receive, send, target)
        return self._forward(scope, receive, send, problem)

    def _is_authorized(self, scope: Scope) -> bool:
        """The request carries the replica's token, or asks for liveness only."""
        presented = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                presented = value
                break
        return is_authorized(presented, self.credentials or b"") or (
            scope["path"] == LIVENESS_PATH and scope["method"] == "GET"
        )

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, target: tuple[str, str | None]
    ) -> None:
        """A V2 inference request, answered without Starlette (the hot path)."""
        plane = self.plane
        started = time.perf_counter()
        stamp = self._stamp(scope["headers"])
        payload = plane.payloads.begin(stamp[1][1].decode(), _correlation(stamp))
        plane.in_flight += 1
        reply: Reply | None
        try:
            reply = await infer_v2(plane, scope, receive, target, payload)
        except FerrymanError as error:
            reply = error_reply(error)
        except ClientDisconnected:
            reply = None
        except Exception:  # a bug: answer 500, keep serving others
            logger.exception("unexpected error answering %s", scope["path"][:200])
            reply = error_reply(_INTERNAL)
        finally:
            plane.in_flight -= 1
        status = CLIENT_CLOSED
        if reply is not None:
            status = reply.status
            await self._send(send, reply, stamp)
        elapsed_s = time.perf_counter() - started
        plane.metrics.count_request(status, elapsed_s)
        plane.payloads.finish(payload, status, elapsed_s)
        if logger.isEnabledFor(logging.INFO):
            logger.info("POST %s %d %.2f ms", scope["path"][:200], status, elapsed_s * 1000)

    def _stamp(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The headers every answer carries: the version, the replica's own request id and,
        when the client sent an id of its own, that id as the correlation id."""
        stamp = [(VERSION_HEADER, self.version), (REQUEST_ID_HEADER, self.ids.next())]
        for name, value in headers:
            if name in CLIENT_ID_HEADERS and _CLIENT_ID.fullmatch(value):
                stamp.append((CORRELATION_HEADER, value))
                break
        return stamp

    async def _send(self, send: Send, reply: Reply, stamp: list[tuple[bytes, bytes]]) -> None:
        headers = [*reply.headers, (b"content-length", b"%d" % len(reply.body)), *stamp]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, problem: FerrymanError | None
    ) -> None:
        """Any other request: on to the app, with the stamps added to its answer."""
        stamp = self._stamp(scope["headers"])
        state = scope.setdefault("state", {})
        state["request_id"] = stamp[1][1].decode()
        status = 0

        async def stamped_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *stamp]
            await send(message)

        started = time.perf_counter()
        is_inference = scope["path"].endswith(_INFERENCE_SUFFIXES)
        plane = self.plane
        if is_inference:
            plane.in_flight += 1
            payload = plane.payloads.begin(state["request_id"], _correlation(stamp))
            state["payload"] = payload
        try:
            if problem is not None:
                await self._send(send, error_reply(problem, close=True), stamp)
                status = problem.status_code
            else:
                await self.app(scope, receive, stamped_send)
        except ClientDisconnected:
            status = status or CLIENT_CLOSED
        except Exception:  # a bug: answer 500 once, keep serving others
            logger.exception("unexpected error answering %s", scope["path"][:200])
            if status == 0:
                await self._send(send, error_reply(_INTERNAL, close=True), stamp)
                status = 500
        finally:
            elapsed_s = time.perf_counter() - started
            if is_inference:
                plane.in_flight -= 1
                plane.metrics.count_request(status or 500, elapsed_s)
                plane.payloads.finish(payload, status or 500, elapsed_s)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "%s %s %d %.2f ms", scope["method"], scope["path"][:200], status or 500,
                    elapsed_s * 1000,
                )  # fmt: skip


def _correlation(stamp: list[tuple[bytes, bytes]]) -> str | None:
    """The client's own id for the request, from its stamp (None if it sent none)."""
    return stamp[2][1].decode() if len(stamp) > 2 else None
