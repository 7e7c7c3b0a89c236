"""Scale from zero: a burst is held until a replica appears; beyond the bounds, a fast 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest

from ferryman.gateway import Gateway
from tests.gateway.conftest import INFER, call, endpoint, serving, standins, table, variant
from tests.gateway.standin import StandIn

pytestmark = pytest.mark.anyio


async def until_held(gateway: Gateway, count: int) -> None:
    """Wait (bounded) until ``count`` requests are held: the gateway has no event for it."""
    async with asyncio.timeout(10):
        while gateway.held().get("digits", 0) < count:
            await asyncio.sleep(0.005)


async def test_a_burst_is_held_then_served_when_a_replica_appears(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with standins(StandIn("v1")) as (a,), serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100), max_held=100, hold_timeout_s=20)))
        url = gw + INFER.format("digits")
        burst = [asyncio.create_task(call(session, url)) for _ in range(60)]
        await until_held(gateway, 60)
        held = await call(session, gw + "/-/held", "GET")
        assert held.json() == {"held": {"digits": 60}}
        metrics = (await call(session, gw + "/metrics", "GET")).body.decode()
        assert 'ferryman_gateway_held_requests{endpoint="digits"} 60.0' in metrics
        gateway.set_routes(table(endpoint(variant("v1", 100, a)), generation=2))
        replies = await asyncio.wait_for(asyncio.gather(*burst), timeout=20)
        assert [reply.status for reply in replies] == [200] * 60
        assert gateway.held() == {}


async def test_beyond_max_held_requests_get_503_at_once(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100), max_held=10, hold_timeout_s=20)))
        url = gw + INFER.format("digits")
        held = [asyncio.create_task(call(session, url)) for _ in range(10)]
        await until_held(gateway, 10)
        started = time.monotonic()
        overflow = await asyncio.gather(*(call(session, url) for _ in range(5)))
        assert time.monotonic() - started < 0.5
        for reply in overflow:
            assert reply.status == 503
            assert reply.headers["retry-after"] == "1"
            assert "already holds 10 requests" in reply.json()["error"]
        gateway.set_routes(table(endpoint(variant("v1", 100)), generation=2))  # still none
        assert gateway.held() == {"digits": 10}
        for task in held:
            task.cancel()


async def test_the_hold_ends_with_503_after_hold_timeout(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100), hold_timeout_s=0.3)))
        started = time.monotonic()
        reply = await call(session, gw + INFER.format("digits"))
        waited_s = time.monotonic() - started
        assert reply.status == 503
        assert "after waiting 0.3 s" in reply.json()["error"]
        assert 0.3 <= waited_s < 1.5
        metrics = (await call(session, gw + "/metrics", "GET")).body.decode()
        assert 'kind="unavailable",variant="v1"} 1.0' in metrics


async def test_a_client_that_leaves_frees_its_hold_at_once(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100), hold_timeout_s=30)))
        waiting = [
            asyncio.create_task(call(session, gw + INFER.format("digits"))) for _ in range(5)
        ]
        await until_held(gateway, 5)
        for task in waiting:
            task.cancel()  # aiohttp closes the connection
        async with asyncio.timeout(5):
            while gateway.held():
                await asyncio.sleep(0.005)
