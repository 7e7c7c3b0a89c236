"""Traffic split through the real gateway over HTTP: weights (Z2), sticky keys, rules."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import aiohttp
import pytest

from ferryman.control.metrics.traffic import traffic_by_variant
from ferryman.gateway import Gateway
from ferryman.gateway.routes import HeaderRule
from tests.gateway.conftest import (
    INFER,
    call,
    endpoint,
    serving,
    standins,
    table,
    variant,
)
from tests.gateway.standin import StandIn

pytestmark = pytest.mark.anyio
REQUESTS = 2_000


async def spread(
    session: aiohttp.ClientSession, url: str, count: int, **kwargs: object
) -> Counter[str]:
    """Send ``count`` requests, 32 at a time; count the variants that answered."""
    seen: Counter[str] = Counter()
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            reply = await call(session, url, **kwargs)  # type: ignore[arg-type]
            assert reply.status == 200, reply.body
            assert reply.json()["variant"] == reply.variant
            seen[reply.variant] += 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(32))), timeout=60)
    return seen


async def test_weights_land_within_3_points(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    """Z2: canary weights 10, 50, 90 over 2,000 requests each land within ±3 pp.

    The draws come from a seeded generator: one draw per request, so the counts do not
    depend on the order in which concurrent requests arrive, and the test cannot flake.
    """
    gateway = make_gateway(draw=random.Random(2026).random)
    async with (
        standins(StandIn("stable"), StandIn("canary")) as (a, b),
        serving(gateway, "on") as gw,
    ):
        for weight in (10, 50, 90):
            route = endpoint(
                variant("stable", 100 - weight, a), variant("canary", weight, b, version=2)
            )
            gateway.set_routes(table(route, generation=weight))
            seen = await spread(session, gw + INFER.format("digits"), REQUESTS)
            share = 100 * seen["canary"] / REQUESTS
            assert abs(share - weight) <= 3, (weight, seen)


async def test_sticky_keys_never_switch_while_weights_stay(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with (
        standins(StandIn("stable"), StandIn("canary")) as (a, b),
        serving(gateway, "on") as gw,
    ):
        route = endpoint(
            variant("stable", 50, a), variant("canary", 50, b, version=2), sticky_header="x-user-id"
        )
        gateway.set_routes(table(route))
        url = gw + INFER.format("digits")
        first: dict[str, str] = {}
        for round_ in range(5):
            for user in range(100):
                reply = await call(session, url, headers={"x-user-id": f"user-{user}"})
                assert first.setdefault(f"user-{user}", reply.variant) == reply.variant, round_
        assert set(first.values()) == {"stable", "canary"}


async def test_header_rules_pick_the_variant_first(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with (
        standins(StandIn("stable"), StandIn("canary")) as (a, b),
        serving(gateway, "on") as gw,
    ):
        rule = HeaderRule(header="x-canary", equals="yes", variant="canary")
        route = endpoint(
            variant("stable", 100, a), variant("canary", 0, b, version=2), rules=(rule,)
        )
        gateway.set_routes(table(route))
        url = gw + INFER.format("digits")
        assert {(await call(session, url)).variant for _ in range(50)} == {"stable"}
        ruled = [await call(session, url, headers={"x-canary": "yes"}) for _ in range(20)]
        assert {reply.variant for reply in ruled} == {"canary"}
        assert (await call(session, url, headers={"x-canary": "YES"})).variant == "stable"


async def test_paths_are_rewritten_to_the_variant_model(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with standins(StandIn("v1"), StandIn("v2")) as (a, b), serving(gateway, "on") as gw:
        one = variant("v1", 100, a).model_copy(update={"model": "mnist"})
        gateway.set_routes(table(endpoint(one, variant("v2", 0, b, version=2))))
        cases = [
            ("POST", "/v2/models/digits/infer", "/v2/models/mnist/infer"),
            ("GET", "/v2/models/digits/ready", "/v2/models/mnist/ready"),
            ("GET", "/v2/models/digits", "/v2/models/mnist"),
            ("POST", "/v1/models/digits:predict", "/v1/models/mnist:predict"),
            ("POST", "/endpoints/digits/predict", "/predict"),
            ("GET", "/v2/models/digits/versions/2", "/v2/models/digits/versions/2"),
            (
                "POST",
                "/v2/models/digits/versions/1/infer?x=../y",
                "/v2/models/mnist/versions/1/infer",
            ),
        ]
        for method, path, upstream in cases:
            reply = await call(
                session,
                gw + path,
                method,
                headers={"connection": "keep-alive, x-hop", "x-hop": "1"},
            )
            assert reply.status == 200, (path, reply.body)
            assert reply.json()["path"] == upstream
            expected = b if "/versions/2" in path else a
            assert reply.json()["host"] == expected.removeprefix("http://")
            assert reply.json()["connection"] == ""  # hop-by-hop headers stay behind
            assert reply.headers["x-replica"] == reply.variant


async def test_an_unknown_version_is_404(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with standins(StandIn("v1")) as (a,), serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100, a))))
        reply = await call(session, gw + "/v2/models/digits/versions/7/infer")
        assert reply.status == 404
        assert "serves versions [1], not 7" in reply.json()["error"]


async def test_requests_pinned_to_a_version_are_no_sample_for_the_gates(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    """A client that names the candidate's version picks its variant: 40 refused requests
    pinned to a 10% canary made its 4xx share 0.88 against the baseline's 0 and rolled it back
    at once. Pinned answers are counted apart; the traffic rollouts judge holds the split's."""
    gateway = make_gateway(draw=random.Random(7).random)
    async with (
        standins(StandIn("stable"), StandIn("canary", status=400)) as (a, b),
        serving(gateway, "on") as gw,
    ):
        gateway.set_routes(
            table(endpoint(variant("stable", 90, a), variant("canary", 10, b, version=2)))
        )
        pinned = [await call(session, gw + "/v2/models/digits/versions/2/infer") for _ in range(40)]
        assert {(reply.status, reply.variant) for reply in pinned} == {(400, "canary")}
        split = [await call(session, gw + INFER.format("digits")) for _ in range(40)]
    judged = traffic_by_variant(gateway.metrics.exposition().decode())
    canary = judged.get(("digits", "canary"))
    split_canary = sum(reply.variant == "canary" for reply in split)
    assert (canary.requests if canary else 0) == split_canary
    assert judged[("digits", "stable")].requests == 40 - split_canary
    exposition = gateway.metrics.exposition().decode()
    assert (
        'ferryman_gateway_pinned_requests_total{code="4xx",endpoint="digits",variant="canary"} 40.0'
        in exposition
    )
