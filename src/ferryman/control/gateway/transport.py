"""The one outside system of the gateway: replicas over HTTP, behind a one-method seam.

:class:`PooledTransport` keeps keep-alive connection pools (aiohttp: measured faster than
httpx's async client at concurrency 64, see bench/gateway). It tells apart the two ways a
send can fail, because only one of them is safe to retry:

    NotReached (503)    the connection was never made: refused, or connect timed out
    BadGateway (502)    bytes may have reached the replica: never retried
    DeadlineExceeded    no whole answer within request_timeout_s (504)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp

from ferryman.config import GatewaySettings
from ferryman.control.gateway.messages import Answer, RawHeaders
from ferryman.errors import DeadlineExceeded, FerrymanError, Unavailable

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
REQUEST_DROPPED = HOP_BY_HOP | {b"host"}
RESPONSE_DROPPED = HOP_BY_HOP | {b"date", b"server"}


class BadGateway(FerrymanError):
    """A replica failed after the request may have reached it (never retried).

    It belongs in ``ferryman.errors``' tree; it lives here until that module grows a 502.
    """

    status_code = 502


class NotReached(Unavailable):
    """No connection to the replica was made, so it cannot have seen the request."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """One request for a replica: method, replica path, headers to forward, body bytes."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Transport(Protocol):
    """Send one request to a replica's base URL and return its whole answer."""

    async def send(self, backend: str, request: Upstream) -> Answer: ...

    async def close(self) -> None: ...


class PooledTransport:
    """aiohttp with one keep-alive pool per replica; bodies pass through as bytes."""

    def __init__(self, settings: GatewaySettings) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=settings.pool_connections_per_backend,
            keepalive_timeout=settings.pool_keepalive_s,
        )
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s, sock_connect=settings.connect_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def send(self, backend: str, request: Upstream) -> Answer:
        try:
            async with self._session.request(
                request.method,
                backend + request.path,
                headers=request.headers,
                data=request.body if request.method == "POST" else None,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return Answer(response.status, _forwarded(response.raw_headers), body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotReached("the replica refused the connection") from exc
        except TimeoutError as exc:
            raise DeadlineExceeded(
                "the replica did not answer within the gateway's request_timeout_s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise BadGateway(f"the replica failed mid-request ({type(exc).__name__})") from exc

    async def close(self) -> None:
        await self._session.close()


def _forwarded(headers: tuple[tuple[bytes, bytes], ...]) -> RawHeaders:
    return [
        (name.lower(), value) for name, value in headers if name.lower() not in RESPONSE_DROPPED
    ]
