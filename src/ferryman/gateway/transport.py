"""The one outside system of the gateway: replicas over HTTP, behind a one-method seam.

The implementation is :class:`~ferryman.gateway.pool.ConnectionPool`. A transport
tells apart the ways a send can fail, because only one of them is safe to retry:

    NotReached (503)    the connection was never made: refused, or connect timed out
    Unread (503)        the replica reset the connection before reading the request
    BadGateway (502)    the replica may have processed the request: never retried
    DeadlineExceeded    no whole answer within request_timeout_s (504)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from ferryman.errors import Unavailable
from ferryman.gateway.messages import Answer

# RFC 9110 7.6.1 hop-by-hop headers, plus those the gateway sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
REQUEST_DROPPED = HOP_BY_HOP | {b"host", b"authorization"}
"""Never forwarded: the client's inference token is for the gateway; replicas get the
fleet's secret from the gateway instead (:class:`~.pool.ConnectionPool`)."""
RESPONSE_DROPPED = HOP_BY_HOP | {b"date", b"server"}


class NotReached(Unavailable):
    """No connection to the replica was made, so it cannot have seen the request."""


class Unread(NotReached):
    """The replica's kernel reset the connection before any answer: the request was still
    unread in its socket when the replica died (or arrived after), so it cannot have been
    processed and is safe to send to another replica."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """One request for a replica: method, replica path, headers to forward (lowercase names,
    as the client sent them), body bytes."""

    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class Transport(Protocol):
    """Send one request to a replica's base URL and return its whole answer."""

    async def send(self, backend: str, request: Upstream) -> Answer: ...

    def retain(self, backends: Collection[str]) -> None:
        """Close idle connections to replicas other than ``backends`` (a new route table)."""

    async def close(self) -> None: ...
