"""The edge of a replica: header limits, request ids, response headers, metrics, one log line.

A pure ASGI middleware. Every response carries ``ferryman-model-version`` and
``ferryman-request-id``; inference requests are counted by status code, timed, and leave a
payload record. V2 inference (``POST /v2/models/{m}[/versions/{v}]/infer``), the hot path,
is answered here through :func:`ferryman.serving.http.infer_v2` without passing through
Starlette; every other request goes on to the app.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferryman.errors import FerrymanError
from ferryman.host_policy import HostPolicy
from ferryman.serving.dataplane import DataPlane
from ferryman.serving.http import Reply, error_reply, infer_v2, v2_infer_target
from ferryman.serving.limits import ClientDisconnected, HeaderLimits

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"ferryman-request-id"
VERSION_HEADER = b"ferryman-model-version"
CLIENT_CLOSED = 499
"""The status recorded (never sent) when the client left before its body arrived."""
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_INFERENCE_SUFFIXES = ("/infer", ":predict", "/predict", "ModelInfer")
_INTERNAL = FerrymanError("internal error; see the log")


class RequestIds:
    """Request ids of 32 hex digits: a random prefix per process and a counter.

    Unique across replicas and restarts (64 random bits each), and a third of the cost of
    16 fresh random bytes per request.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex().encode()
        self._counter = itertools.count(1)

    def next(self) -> bytes:
        return b"%s%016x" % (self._prefix, next(self._counter))


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

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The request's coroutine: the hot path's, or the one that hands it on.

        A plain function, so the coroutine it returns is awaited by the caller directly:
        one coroutine frame fewer on every request's way in and out.
        """
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        headers = scope["headers"]
        request_id = self._request_id(headers)
        problem = self.limits.check(headers) or self.hosts.refusal(
            headers, scope["method"], scope.get("scheme", "http")
        )
        target = v2_infer_target(scope) if problem is None else None
        if target is not None:
            return self._infer(scope, receive, send, target, request_id)
        return self._forward(scope, receive, send, request_id, problem)

    def _request_id(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        for name, value in headers:
            if name == REQUEST_ID_HEADER and _CLIENT_ID.fullmatch(value):
                return value
        return self.ids.next()

    async def _infer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        target: tuple[str, str | None],
        request_id: bytes,
    ) -> None:
        """A V2 inference request, answered without Starlette (the hot path)."""
        plane = self.plane
        started = time.perf_counter()
        payload = plane.payloads.begin(request_id.decode())
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
            await self._send(send, reply, request_id)
        elapsed_s = time.perf_counter() - started
        plane.metrics.count_request(status, elapsed_s)
        plane.payloads.finish(payload, status, elapsed_s)
        if logger.isEnabledFor(logging.INFO):
            logger.info("POST %s %d %.2f ms", scope["path"][:200], status, elapsed_s * 1000)

    async def _send(self, send: Send, reply: Reply, request_id: bytes) -> None:
        headers = [
            *reply.headers,
            (b"content-length", b"%d" % len(reply.body)),
            (VERSION_HEADER, self.version),
            (REQUEST_ID_HEADER, request_id),
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: bytes,
        problem: FerrymanError | None,
    ) -> None:
        """Any other request: on to the app, with the stamps added to its answer."""
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        stamp = [(VERSION_HEADER, self.version), (REQUEST_ID_HEADER, request_id)]
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
            payload = plane.payloads.begin(scope["state"]["request_id"])
            scope["state"]["payload"] = payload
        try:
            if problem is not None:
                await self._send(send, error_reply(problem, close=True), request_id)
                status = problem.status_code
            else:
                await self.app(scope, receive, stamped_send)
        except ClientDisconnected:
            status = status or CLIENT_CLOSED
        except Exception:  # a bug: answer 500 once, keep serving others
            logger.exception("unexpected error answering %s", scope["path"][:200])
            if status == 0:
                await self._send(send, error_reply(_INTERNAL, close=True), request_id)
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
