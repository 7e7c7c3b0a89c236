"""One sticky key's weight in the traffic rollouts judge: capped per key and window."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from ferryman.control.metrics.traffic import traffic_by_variant
from ferryman.control.rollouts.gates import Gates, Verdict, analyse
from ferryman.gateway import Gateway
from ferryman.gateway.keycap import StickyKeyCap
from ferryman.gateway.routes import sticky_bucket
from tests.gateway.conftest import INFER, call, endpoint, sample, serving, table, variant
from tests.gateway.standin import StandIn


def candidate_keys(prefix: str, count: int) -> list[str]:
    """Sticky keys that land on the candidate of a 90/10 split (bucket 90..99)."""
    keys = (f"{prefix}-{n}" for n in itertools.count())
    return list(itertools.islice((k for k in keys if sticky_bucket(k) >= 90), count))


class FailsUsers:
    """A bad candidate: 500 to every user, 200 to the one client that floods it."""

    def __init__(self) -> None:
        self.good, self.bad = StandIn("canary"), StandIn("canary", status=500)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        key = dict(scope.get("headers", ())).get(b"x-user-id", b"")
        await (self.good if key.startswith(b"flood") else self.bad)(scope, receive, send)


@pytest.mark.anyio
async def test_one_key_flooding_a_bad_candidate_cannot_dilute_its_errors(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    """The answer names the variant and the key's hash is public, so a client can send all
    its requests to the candidate: 600 good ones under one key made a candidate that failed
    every user's request pass the 0.99 success gate (5 errors in 605). Capped at 10 a
    window, that key weighs 10: the candidate fails."""
    gateway = make_gateway(sticky_judged_per_key=10, sticky_window_s=3600)
    users, (flood,) = candidate_keys("user", 5), candidate_keys("flood", 1)
    async with (
        serving(StandIn("stable")) as stable,
        serving(FailsUsers()) as canary,
        serving(gateway, "on") as gw,
    ):
        split = endpoint(variant("stable", 90, stable), variant("canary", 10, canary, version=2),
                         sticky_header="x-user-id")  # fmt: skip
        gateway.set_routes(table(split))
        for key in users:
            reply = await call(session, gw + INFER.format("digits"), headers={"x-user-id": key})
            assert (reply.status, reply.variant) == (500, "canary")
        for _ in range(20):
            flooded = await asyncio.gather(*(
                call(session, gw + INFER.format("digits"), headers={"x-user-id": flood})
                for _ in range(30)
            ))  # fmt: skip
            assert {(reply.status, reply.variant) for reply in flooded} == {(200, "canary")}
    exposition = gateway.metrics.exposition().decode()
    judged = traffic_by_variant(exposition)[("digits", "canary")]
    assert (judged.requests, judged.errors) == (15, 5)
    capped = sample(exposition, "ferryman_gateway_capped_requests_total", variant="canary")
    assert capped == 590
    gates = Gates(min_requests=5)
    assert analyse(gates, judged).verdict is Verdict.FAIL
    uncapped = replace(judged, requests=judged.requests + capped)
    assert analyse(gates, uncapped).verdict is Verdict.PASS  # what the flood made of it


def test_a_key_weighs_its_share_per_window_and_per_endpoint() -> None:
    now = [0.0]
    cap = StickyKeyCap(per_key=2, window_s=10, max_keys=100, clock=lambda: now[0])
    assert [cap.admits("e", b"k") for _ in range(3)] == [True, True, False]
    assert cap.admits("other", b"k")  # another endpoint's share
    assert cap.admits("e", b"j")
    now[0] = 10.0  # the next window
    assert [cap.admits("e", b"k") for _ in range(3)] == [True, True, False]


def test_a_full_table_judges_no_new_key_but_keeps_counting_those_it_holds() -> None:
    """Memory is bounded: a client minting keys to fill the table stalls the judged traffic
    (the gates hold) and never gets an uncounted key through."""
    cap = StickyKeyCap(per_key=3, window_s=10, max_keys=2, clock=lambda: 0.0)
    assert cap.admits("e", b"a")
    assert cap.admits("e", b"b")
    assert not cap.admits("e", b"c")
    assert not cap.admits("e", b"c")
    assert [cap.admits("e", b"a") for _ in range(3)] == [True, True, False]


@pytest.mark.anyio
async def test_the_openai_relay_caps_a_key_as_the_v2_path_does(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(sticky_judged_per_key=10, sticky_window_s=3600)
    (flood,) = candidate_keys("flood", 1)
    async with (
        serving(StandIn("stable")) as stable,
        serving(StandIn("canary")) as canary,
        serving(gateway, "on") as gw,
    ):
        split = endpoint(variant("stable", 90, stable), variant("canary", 10, canary, version=2),
                         sticky_header="x-user-id")  # fmt: skip
        gateway.set_routes(table(split))
        url = gw + "/endpoints/digits/v1/completions"
        for _ in range(30):
            reply = await call(session, url, data='{"prompt": "hi"}', headers={"x-user-id": flood})
            assert (reply.status, reply.variant) == (200, "canary")
    exposition = gateway.metrics.exposition().decode()
    assert traffic_by_variant(exposition)[("digits", "canary")].requests == 10
    assert sample(exposition, "ferryman_gateway_capped_requests_total", variant="canary") == 20
