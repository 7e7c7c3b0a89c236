"""The replica transports the gateway's own pool is measured against: aiohttp and httpx.

Both implement the gateway's Transport seam with the same failure rules; only the
connection pool and the HTTP client differ.
"""

from __future__ import annotations

import aiohttp
import httpx

from ferryman.config import GatewaySettings
from ferryman.errors import BadGateway, DeadlineExceeded
from ferryman.gateway.messages import Answer
from ferryman.gateway.transport import (
    RESPONSE_DROPPED,
    NotReached,
    Upstream,
)


class AiohttpTransport:
    """aiohttp with one keep-alive pool per replica (the gateway's first transport)."""

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
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers],
                data=request.body if request.method == "POST" else None,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return Answer(
                    response.status,
                    [
                        (k.lower(), v)
                        for k, v in response.raw_headers
                        if k.lower() not in RESPONSE_DROPPED
                    ],
                    body,
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotReached("the replica refused the connection") from exc
        except TimeoutError as exc:
            raise DeadlineExceeded(
                "the replica did not answer within the gateway's request_timeout_s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise BadGateway(f"the replica failed mid-request ({type(exc).__name__})") from exc

    def retain(self, backends: object) -> None:
        """Pools of replicas that left stay until they expire (not measured here)."""

    async def close(self) -> None:
        await self._session.close()


class HttpxTransport:
    """The alternative measured against aiohttp: httpx's async pool, bytes in and out."""

    def __init__(self, settings: GatewaySettings) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        self._client = httpx.AsyncClient(limits=limits, timeout=settings.request_timeout_s)

    async def send(self, backend: str, request: Upstream) -> Answer:
        response = await self._client.request(
            request.method, backend + request.path, headers=request.headers, content=request.body
        )
        raw = response.headers.raw
        headers = [(k.lower(), v) for k, v in raw if k.lower() not in RESPONSE_DROPPED]
        return Answer(response.status_code, headers, response.content)

    def retain(self, backends: object) -> None:
        """Pools of replicas that left stay until they expire (not measured here)."""

    async def close(self) -> None:
        await self._client.aclose()
