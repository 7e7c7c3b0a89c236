"""The edge of a replica: header limits, request ids, response headers, metrics, one log line.

A pure ASGI middleware, so it costs one function call per request. Every response carries
``ferryman-model-version`` and ``ferryman-request-id``; inference requests are counted by
status code and timed.
"""

from __future__ import annotations

import logging
import os
import re
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferryman.errors import FerrymanError
from ferryman.serving.dataplane import DataPlane
from ferryman.serving.limits import HeaderLimits

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"ferryman-request-id"
VERSION_HEADER = b"ferryman-model-version"
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_INFERENCE_SUFFIXES = ("/infer", ":predict", "/predict", "ModelInfer")


class Edge:
    """Wraps the app: checks headers, tags responses, counts inference requests."""

    def __init__(self, app: ASGIApp, plane: DataPlane) -> None:
        self.app = app
        self.plane = plane
        settings = plane.settings
        self.limits = HeaderLimits(settings.max_header_bytes, settings.max_header_count)
        self.version = plane.identity.version.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
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
        problem = self.limits.check(scope["headers"])
        is_inference = scope["path"].endswith(_INFERENCE_SUFFIXES)
        if is_inference:
            self.plane.metrics.in_flight.inc()
            payload = self.plane.payloads.begin(scope["state"]["request_id"])
            scope["state"]["payload"] = payload
        try:
            if problem is not None:
                await _send_error(stamped_send, problem)
            else:
                await self.app(scope, receive, stamped_send)
        except Exception:  # a bug: answer 500 once, keep serving others
            logger.exception("unexpected error answering %s", scope["path"][:200])
            if status == 0:
                await _send_error(stamped_send, FerrymanError("internal error; see the log"))
        finally:
            elapsed_s = time.perf_counter() - started
            if is_inference:
                self.plane.metrics.in_flight.dec()
                self.plane.metrics.count_request(status or 500, elapsed_s)
                self.plane.payloads.finish(payload, status or 500, elapsed_s)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "%s %s %d %.2f ms", scope["method"], scope["path"][:200], status or 500,
                    elapsed_s * 1000,
                )  # fmt: skip


def _request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == REQUEST_ID_HEADER and _CLIENT_ID.fullmatch(value):
            return value
    return os.urandom(16).hex().encode()


async def _send_error(send: Send, error: FerrymanError) -> None:
    body = orjson.dumps({"error": error.message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
