"""The fast lane (gateway/fastlane.py) answers model requests as the ASGI path does.

Over raw sockets to a real gateway and a real stand-in replica: the same request answered in
the fast lane (a sized body) and on the ASGI path (a chunked body) gets the same answer;
pipelined requests are answered in order; ``connection: close`` closes; a client that leaves
while its request is held stops being held.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from ferryman.gateway import Gateway
from ferryman.gateway.messages import Answer, RawHeaders, Receive
from tests.gateway.conftest import BODY, INFER, endpoint, serving, standins, table, variant
from tests.gateway.standin import StandIn

pytestmark = pytest.mark.anyio
PATH = INFER.format("digits")


class CountingGateway(Gateway):
    """A gateway that counts the requests its fast lane hands it."""

    fast = 0

    async def answer_read(
        self,
        method: str,
        path: str,
        headers: RawHeaders,
        scheme: str,
        body: bytes,
        receive: Receive,
    ) -> Answer:
        self.fast += 1
        return await super().answer_read(method, path, headers, scheme, body, receive)


@asynccontextmanager
async def gateway_at(
    make_gateway: Callable[..., Gateway], *backends: str, **settings: object
) -> AsyncIterator[tuple[CountingGateway, str, int]]:
    gateway = CountingGateway(make_gateway(**settings).settings)
    async with serving(gateway, "on") as url:
        gateway.set_routes(table(endpoint(variant("v1", 100, *backends), hold_timeout_s=5)))
        host, port = url.removeprefix("http://").split(":")
        yield gateway, host, int(port)


def sized(body: bytes = BODY.encode(), extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n%s\r\n%s" % (PATH.encode(), len(body), extra, body)
    )


def chunked(body: bytes = BODY.encode()) -> bytes:
    head = (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n" % PATH.encode()
    )
    return head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def test_the_fast_lane_answers_as_the_asgi_path(
    make_gateway: Callable[..., Gateway],
) -> None:
    async with standins(StandIn("v1")) as (a,), gateway_at(make_gateway, a) as (gw, host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(sized())
        fast = await read_answer(reader)
        assert gw.fast == 1
        writer.write(chunked())
        slow = await read_answer(reader)
        assert gw.fast == 1  # the chunked body took the ASGI path
        writer.close()
    for status, headers, body in (fast, slow):
        assert status == 200
        assert headers["ferryman-variant"] == "v1"
        assert json.loads(body)["variant"] == "v1"
        assert "date" in headers
    assert fast[2] == slow[2]
    assert {k for k in fast[1] if k != "date"} == {k for k in slow[1] if k != "date"}


async def test_pipelined_requests_are_answered_in_order(
    make_gateway: Callable[..., Gateway],
) -> None:
    bodies = [
        json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [n]}]})
        for n in range(3)
    ]
    async with standins(StandIn("v1")) as (a,), gateway_at(make_gateway, a) as (gw, host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"".join(sized(body.encode()) for body in bodies))  # one write, three
        answers = [await read_answer(reader) for _ in bodies]
        writer.close()
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert gw.fast >= 1  # the first; those behind it wait in uvicorn's pipeline queue
    assert len({body for _, _, body in answers}) == 1  # the stand-in answers alike


async def test_connection_close_is_honoured(make_gateway: Callable[..., Gateway]) -> None:
    async with standins(StandIn("v1")) as (a,), gateway_at(make_gateway, a) as (gw, host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(sized(extra=b"connection: close\r\n"))
        status, headers, _ = await read_answer(reader)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the gateway closed it
        writer.close()
    assert (status, headers["connection"], gw.fast) == (200, "close", 1)


async def test_a_client_that_leaves_while_held_is_held_no_more(
    make_gateway: Callable[..., Gateway],
) -> None:
    async with gateway_at(make_gateway) as (gw, host, port):  # no replica: requests are held
        _, writer = await asyncio.open_connection(host, port)
        writer.write(sized())
        async with asyncio.timeout(10):
            while gw.held() != {"digits": 1}:
                await asyncio.sleep(0.01)
        writer.close()
        async with asyncio.timeout(10):
            while gw.held():
                await asyncio.sleep(0.01)
    assert gw.fast == 1
