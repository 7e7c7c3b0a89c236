"""Real HTTP on 127.0.0.1: stand-in replicas and the gateway, served on the test's loop.

Every server gets a socket that is bound and listening before it starts, so a test never
waits for a port: early connections queue in the kernel's backlog until uvicorn serves.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
import uvicorn

from ferryman.config import ConnectionSettings, GatewaySettings
from ferryman.connection_limits import ConnectionGuard
from ferryman.gateway import Gateway
from ferryman.gateway.fastlane import GatewayHttpProtocol
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from tests.gateway.standin import StandIn

INFER = "/v2/models/{}/infer"
BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def listening_socket() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


@asynccontextmanager
async def serving(app: Any, lifespan: Literal["auto", "on", "off"] = "off") -> AsyncIterator[str]:
    """Serve an ASGI app on this loop; yields its base URL. A gateway is served with its own
    protocol (model requests take its fast lane, as under ``ferryman gateway``)."""
    sock = listening_socket()
    http: Any = "httptools"
    if isinstance(app, Gateway):  # as build_server serves it: no proxy headers, fast lane
        http = partial(GatewayHttpProtocol, guard=ConnectionGuard(ConnectionSettings()))
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        http=http,
        proxy_headers=not isinstance(app, Gateway),
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def variant(name: str, weight: int, *backends: str, version: int = 1) -> VariantRoute:
    return VariantRoute(
        name=name, model="digits", version=version, weight=weight, backends=backends
    )


def endpoint(*variants: VariantRoute, name: str = "digits", **extra: Any) -> EndpointRoute:
    return EndpointRoute.model_validate({"endpoint": name, "variants": variants, **extra})


def table(*routes: EndpointRoute, generation: int = 1) -> RouteTable:
    return RouteTable(generation=generation, endpoints={r.endpoint: r for r in routes})


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def variant(self) -> str:
        return self.headers.get("ferryman-variant", "")


async def call(
    session: aiohttp.ClientSession, url: str, method: str = "POST", **kwargs: Any
) -> Reply:
    kwargs.setdefault("data", BODY if method == "POST" else None)
    async with session.request(method, url, **kwargs) as response:
        body = await response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, body)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=128)
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


@pytest.fixture
def make_gateway() -> Callable[..., Gateway]:
    def make(
        routes_file: Path | None = None, draw: Callable[[], float] | None = None, **settings: Any
    ) -> Gateway:
        return Gateway(GatewaySettings(**settings), routes_file=routes_file, draw=draw)

    return make


@asynccontextmanager
async def standins(*apps: StandIn) -> AsyncIterator[list[str]]:
    """Serve several stand-ins; yields their base URLs in order."""
    urls: list[str] = []
    async with _nested(apps, urls):
        yield urls


@asynccontextmanager
async def _nested(apps: tuple[StandIn, ...], urls: list[str]) -> AsyncIterator[None]:
    if not apps:
        yield
        return
    async with serving(apps[0]) as url:
        urls.append(url)
        async with _nested(apps[1:], urls):
            yield


def metric_lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
