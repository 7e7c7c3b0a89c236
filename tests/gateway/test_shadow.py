"""Shadow traffic: the primary's answers and latency are unaffected, the comparison recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest

from ferryman.gateway import Gateway
from tests.gateway.conftest import (
    INFER,
    call,
    endpoint,
    sample,
    serving,
    standins,
    table,
    variant,
)
from tests.gateway.standin import StandIn

pytestmark = pytest.mark.anyio
SHADOW = "ferryman_gateway_shadow_total"


async def shadow_counts(session: aiohttp.ClientSession, gw: str, total: int) -> str:
    """The metrics text once ``total`` shadow outcomes are recorded (bounded wait)."""
    async with asyncio.timeout(10):
        while True:
            text = (await call(session, gw + "/metrics", "GET")).body.decode()
            lines = [line for line in text.splitlines() if line.startswith(SHADOW + "{")]
            if sum(float(line.rsplit(" ", 1)[1]) for line in lines) >= total:
                return text
            await asyncio.sleep(0.01)


async def test_a_slow_shadow_never_delays_or_answers(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(shadow_max_in_flight=100)
    primary, shadow = StandIn("v1"), StandIn("v1-int8", delay_s=0.4, outputs=(0.1, 0.7, 0.2002))
    async with standins(primary, shadow) as (a, b), serving(gateway, "on") as gw:
        route = endpoint(variant("v1", 100, a), variant("v1-int8", 0, b), shadow="v1-int8")
        gateway.set_routes(table(route))
        url = gw + INFER.format("digits")
        for index in range(20):
            started = time.monotonic()
            reply = await call(session, url, headers={"x-request-id": str(index)})
            assert time.monotonic() - started < 0.2  # the shadow takes 0.4 s
            assert reply.status == 200
            assert reply.variant == "v1"
            assert reply.json()["variant"] == "v1"
        text = await shadow_counts(session, gw, 20)
        assert sample(text, SHADOW, variant="v1-int8", outcome="close") == 20
        assert sorted(shadow.received, key=int) == [str(index) for index in range(20)]


async def test_shadow_outcomes_tell_a_different_decision(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    primary, shadow = StandIn("v1"), StandIn("v2", outputs=(0.8, 0.1, 0.1))
    async with standins(primary, shadow) as (a, b), serving(gateway, "on") as gw:
        route = endpoint(variant("v1", 100, a), variant("v2", 0, b, version=2), shadow="v2")
        gateway.set_routes(table(route))
        for _ in range(5):
            assert (await call(session, gw + INFER.format("digits"))).variant == "v1"
        text = await shadow_counts(session, gw, 5)
        assert sample(text, SHADOW, variant="v2", outcome="different") == 5


async def test_shadow_copies_beyond_the_bound_are_dropped_and_counted(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(shadow_max_in_flight=2)
    primary, shadow = StandIn("v1"), StandIn("v1-int8", delay_s=0.3)
    async with standins(primary, shadow) as (a, b), serving(gateway, "on") as gw:
        route = endpoint(variant("v1", 100, a), variant("v1-int8", 0, b), shadow="v1-int8")
        gateway.set_routes(table(route))
        replies = await asyncio.gather(
            *(call(session, gw + INFER.format("digits")) for _ in range(10))
        )
        assert {reply.status for reply in replies} == {200}
        text = await shadow_counts(session, gw, 10)
        assert sample(text, SHADOW, variant="v1-int8", outcome="dropped") == 8
        assert sample(text, SHADOW, variant="v1-int8", outcome="equal") == 0
        assert len(shadow.received) == 2
