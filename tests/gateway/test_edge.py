"""The gateway's edge: bad input gets a 4xx with a message, and metrics stay flat (B9)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from ferryman.gateway import Gateway
from tests.gateway.conftest import INFER, call, endpoint, serving, standins, table, variant
from tests.gateway.standin import StandIn

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway_url(
    make_gateway: Callable[..., Gateway],
) -> object:
    gateway = make_gateway(max_body_bytes=4096, max_header_count=20, max_header_bytes=2048)
    async with standins(StandIn("v1")) as (a,), serving(gateway, "on") as url:
        gateway.set_routes(table(endpoint(variant("v1", 100, a))))
        yield url, gateway


async def test_unknown_endpoints_are_404_and_add_no_series(  # RELIABILITY B9
    gateway_url: tuple[str, Gateway], session: aiohttp.ClientSession
) -> None:
    url, gateway = gateway_url
    before = (await call(session, url + "/metrics", "GET")).body.decode()
    rng = random.Random(7)
    names = iter(["".join(rng.choices(string.ascii_lowercase, k=12)) for _ in range(10_000)])

    async def worker() -> None:
        for name in names:
            reply = await call(session, url + INFER.format(name))
            assert reply.status == 404
            assert "is not deployed" in reply.json()["error"]

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(32))), timeout=90)
    after = (await call(session, url + "/metrics", "GET")).body.decode()
    series = [line for line in after.splitlines() if not line.startswith("#")]
    assert len(series) == len([line for line in before.splitlines() if not line.startswith("#")])
    assert "ferryman_gateway_unknown_endpoint_total 10000.0" in after
    assert not any(name in after for name in ("zz", "abcdefghijkl"))
    assert gateway.routes.generation == 1


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/../etc/infer",
        "/v2/models/..%2fetc/infer",
        "/v2/models/%2e%2e/infer",
        "/v2/models/Digits/infer",
        "/v2/models/digits%00/infer",
        "/v2/models/digits/versions/../infer",
        "/v2/models/digits/versions/%EF%BC%91/infer",
        "/v1/models/a/b:predict",
        "/endpoints/..%5c..%5cx/predict",
        "/v2/models/file:%2f%2f%2fetc%2fpasswd/infer",
        "/v2/models/digits/infer/../../x",
        "/etc/passwd",
        "/v2/models/%FF%FE/infer",
    ],
)
async def test_traversal_in_paths_is_refused(
    gateway_url: tuple[str, Gateway], session: aiohttp.ClientSession, path: str
) -> None:
    url, _ = gateway_url
    status, body = await raw_post(url, path)  # as sent: HTTP clients normalise dot segments
    assert 400 <= status < 500, body
    assert set(json.loads(body)) == {"error"}


async def raw_post(url: str, path: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    writer.write(request.encode())
    response = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_oversized_bodies_are_413(
    gateway_url: tuple[str, Gateway], session: aiohttp.ClientSession
) -> None:
    url, _ = gateway_url
    reply = await call(session, url + INFER.format("digits"), data=b"x" * 5000)
    assert reply.status == 413
    assert "limit of 4096 bytes" in reply.json()["error"]

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit applies as the chunks arrive
        for _ in range(100):
            yield b"x" * 100

    reply = await call(session, url + INFER.format("digits"), data=chunks())
    assert reply.status == 413
    ok = await call(session, url + INFER.format("digits"), data=b"x" * 4000)
    assert ok.status == 200


async def test_too_many_or_too_large_headers_are_431(
    gateway_url: tuple[str, Gateway], session: aiohttp.ClientSession
) -> None:
    url, _ = gateway_url
    many = {f"x-h{index}": "1" for index in range(30)}
    assert (await call(session, url + INFER.format("digits"), headers=many)).status == 431
    big = {"x-big": "y" * 3000}
    assert (await call(session, url + INFER.format("digits"), headers=big)).status == 431


async def test_wrong_methods_and_unknown_paths(
    gateway_url: tuple[str, Gateway], session: aiohttp.ClientSession
) -> None:
    url, _ = gateway_url
    wrong = await call(session, url + INFER.format("digits"), "GET")
    assert (wrong.status, wrong.headers["allow"]) == (405, "POST")
    assert "takes POST, not GET" in wrong.json()["error"]
    for path, method, allowed in [
        ("/v2/models/digits", "POST", "GET"),
        ("/v1/models/digits:predict", "GET", "POST"),
        ("/endpoints/digits/predict", "PUT", "POST"),
        ("/metrics", "POST", "GET"),
        ("/v2", "DELETE", "GET"),
        ("/v2/health/ready", "POST", "GET"),
    ]:
        reply = await call(session, url + path, method)
        assert (reply.status, reply.headers["allow"]) == (405, allowed), path
    assert (await call(session, url + "/v2/models/digits/explain")).status == 404
    health = await call(session, url + "/-/healthz", "GET")
    expected = {"status": "ok", "generation": 1, "registry": "", "pid": os.getpid()}
    assert health.json() == expected
    held = await call(session, url + "/-/held", "GET")
    assert held.json() == {"held": {}}


async def test_metrics_count_requests_by_route_table_labels(
    gateway_url: tuple[str, Gateway], session: aiohttp.ClientSession
) -> None:
    url, _ = gateway_url
    for _ in range(5):
        assert (await call(session, url + INFER.format("digits"))).status == 200
    text = (await call(session, url + "/metrics", "GET")).body.decode()
    line = 'ferryman_gateway_requests_total{code="2xx",endpoint="digits",variant="v1"} 5.0'
    assert line in text
    assert "ferryman_gateway_route_generation 1.0" in text


@pytest.mark.parametrize(
    "headers",
    [b"X-Big: " + b"a" * 64 * 1024 + b"\r\n", b"".join(b"X-H%d: 1\r\n" % i for i in range(1000))],
    ids=["one-64KiB-header", "1000-headers"],
)
async def test_header_floods_get_431(gateway_url: tuple[str, Gateway], headers: bytes) -> None:
    """RELIABILITY B7 over raw HTTP (clients refuse to send these)."""
    url, _ = gateway_url
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
    writer.write(head + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 431 ")
