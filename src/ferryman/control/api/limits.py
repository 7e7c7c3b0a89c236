"""A cap on request bodies: the control plane buffers a JSON body whole before parsing it.

FastAPI reads a JSON body into memory and parses it in one piece, so without a cap one
request of a few GB (a feedback batch, a plan) took the control plane's memory, and with it
the control loop that runs the rollouts. :class:`BodyCap` answers 413 to a body declared
over ``control.max_body_bytes``, and ends one that passes it while arriving (chunked), before
any route sees it. The model upload reads its own body with its own, larger limit
(``control.max_upload_bytes``), so it is left to that.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD = re.compile(r"/api/v1/models/[^/]+/versions")
"""The one route that streams its body under a limit of its own (a model file)."""


class BodyCap:
    """413 for a request body over ``limit_bytes``, declared or as it arrives."""

    def __init__(self, app: ASGIApp, limit_bytes: int) -> None:
        self._app = app
        self._limit = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "POST" and UPLOAD.fullmatch(scope["path"])
        ):
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._limit:
            await self._refuse(send, f"the body declares {int(declared)} bytes")
            return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self._limit:
                raise HTTPException(413, self._message(f"the body passed {self._limit} bytes"))
            return message

        await self._app(scope, capped, send)

    def _message(self, what: str) -> str:
        return (
            f"{what}; the limit is {self._limit} (control.max_body_bytes): send a large "
            "feedback batch as several requests"
        )

    async def _refuse(self, send: Send, what: str) -> None:
        body = json.dumps({"error": self._message(what)}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
