"""ASGI at the edge: the bounded request body, header limits, and sending one answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ferryman.errors import (
    FerrymanError,
    HeadersTooLarge,
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole HTTP response: status, raw headers and body bytes."""

    status: int
    headers: RawHeaders = field(default_factory=list)
    body: bytes = b""


def json_answer(status: int, document: object, *extra: tuple[bytes, bytes]) -> Answer:
    return Answer(status, [JSON_TYPE, *extra], json.dumps(document).encode())


def error_answer(error: FerrymanError) -> Answer:
    """The one rendering of an error: ``{"error": message}`` with its status."""
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(error, Unavailable) and error.retry_after_s is not None:
        extra.append((b"retry-after", str(error.retry_after_s).encode()))
    if isinstance(error, MethodNotAllowed):
        extra.append((b"allow", ", ".join(error.allowed).encode()))
    if isinstance(error, Unauthenticated):
        extra.append((b"www-authenticate", b'Bearer realm="ferryman"'))
    return json_answer(error.status_code, {"error": error.message}, *extra)


async def send_answer(send: Send, answer: Answer) -> None:
    headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def check_headers(headers: RawHeaders, max_count: int, max_bytes: int) -> None:
    """Refuse too many or too large request headers with 431."""
    total = sum(len(name) + len(value) for name, value in headers)
    if len(headers) > max_count or total > max_bytes:
        raise HeadersTooLarge(
            f"request has {len(headers)} headers of {total} bytes; the gateway takes at most "
            f"{max_count} headers and {max_bytes} bytes"
        )


async def read_body(headers: RawHeaders, receive: Receive, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``max_bytes`` (never buffered)."""
    declared = next((value for name, value in headers if name == b"content-length"), None)
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(int(declared), max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Unavailable("the client went away before its request body arrived")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise too_large(size, max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large(size: int, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body of {size} bytes or more is larger than the gateway's limit of "
        f"{max_bytes} bytes (gateway.max_body_bytes); send a smaller batch"
    )
