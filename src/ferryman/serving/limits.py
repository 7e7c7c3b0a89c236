"""Hard limits at the edge: header size and count, header encoding, body size.

Bodies are read chunk by chunk and refused (413) as soon as they pass the limit, or before
a byte is read when ``Content-Length`` already says so; memory stays under the limit
whatever the client claims or however it chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Receive

from ferryman.errors import FerrymanError, HeadersTooLarge, InvalidInput, PayloadTooLarge


class ClientDisconnected(Exception):
    """The client went away before its request body arrived; nobody is left to answer."""


@dataclass(frozen=True)
class HeaderLimits:
    """The most header bytes and headers one request may carry."""

    max_bytes: int
    max_count: int

    def check(self, headers: list[tuple[bytes, bytes]]) -> FerrymanError | None:
        """The error ``headers`` deserve, or None when they are acceptable."""
        if len(headers) > self.max_count:
            return HeadersTooLarge(
                f"the request has {len(headers)} headers; the limit is {self.max_count}"
            )
        total = 0
        for name, value in headers:
            total += len(name) + len(value)
            if value.isascii():  # the common case, checked without decoding
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                shown = name.decode("latin-1")[:64]
                return InvalidInput(f"header {shown!r} is not valid UTF-8; send UTF-8 or ASCII")
        if total > self.max_bytes:
            return HeadersTooLarge(
                f"the request headers total {total} bytes; the limit is {self.max_bytes}"
            )
        return None


async def read_body(content_length: str | None, receive: Receive, max_bytes: int) -> bytes:
    """The whole body, refused with 413 once it is (or says it will be) over ``max_bytes``.

    ``receive`` is the ASGI receive channel. A body that arrives in one message (the common
    case: uvicorn hands over what it has parsed) is returned as it is, without a copy.
    """
    if content_length is not None:
        if not (content_length.isascii() and content_length.isdigit()):
            raise InvalidInput(f"Content-Length {content_length[:32]!r} is not a number")
        if int(content_length) > max_bytes:
            raise PayloadTooLarge(_too_large(int(content_length), max_bytes))
    first = b""
    buffer: bytearray | None = None  # one growing buffer: many tiny chunks cost no more
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        if buffer is None and not first:
            first = chunk
        else:
            if buffer is None:
                buffer = bytearray(first)
            buffer += chunk
        received = len(first) if buffer is None else len(buffer)
        if received > max_bytes:
            raise PayloadTooLarge(_too_large(received, max_bytes))
        if not message.get("more_body", False):
            return first if buffer is None else bytes(buffer)


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"the request body has {size} bytes or more; the limit is {max_bytes} "
        "(FERRYMAN_SERVING__MAX_BODY_BYTES); send fewer rows per request"
    )
