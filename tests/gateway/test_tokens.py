"""Inference tokens at the gateway, and the fleet secret it shows replicas (issue 14).

Real HTTP on 127.0.0.1: the gateway and stand-in replicas served on the test's loop.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from ferryman.gateway import Gateway
from ferryman.registry import token_digest
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

DIGITS_TOKEN = "fm_digits-token-for-tests"
OTHER_TOKEN = "fm_other-token-for-tests"
FLEET_SECRET = "fleet-secret-for-tests"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_an_endpoint_that_requires_a_token_takes_only_its_own(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(replica_token=FLEET_SECRET)
    async with standins(StandIn("v1")) as (replica,), serving(gateway, "on") as gw:
        digits = endpoint(variant("v1", 100, replica), require_token=True)
        other = endpoint(variant("v1", 100, replica), name="other")
        tokens = {token_digest(DIGITS_TOKEN): "digits", token_digest(OTHER_TOKEN): "other"}
        gateway.set_routes(table(digits, other).model_copy(update={"inference_tokens": tokens}))
        url = gw + INFER.format("digits")

        refused = await call(session, url)
        assert refused.status == 401
        assert "ferryman tokens create --endpoint digits --scope infer" in refused.json()["error"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        for headers in (
            bearer("fm_not-a-token"),
            {"authorization": f"Basic {DIGITS_TOKEN}"},
            {"authorization": DIGITS_TOKEN},
            {"x-token": DIGITS_TOKEN},
        ):
            assert (await call(session, url, headers=headers)).status == 401, headers
        wrong = await call(session, url, headers=bearer(OTHER_TOKEN))
        assert wrong.status == 403
        assert wrong.json()["error"] == "this token is for endpoint 'other', not 'digits'"
        assert replica_saw_nothing_yet(gateway)

        served = await call(session, url, headers=bearer(DIGITS_TOKEN))
        assert served.status == 200
        # The replica got the fleet's secret, never the client's token.
        assert served.json()["authorization"] == f"Bearer {FLEET_SECRET}"
        for method, path in (("GET", "/v2/models/digits"), ("GET", "/v2/models/digits/ready"),
                             ("POST", "/v1/models/digits:predict"),
                             ("POST", "/endpoints/digits/predict")):  # fmt: skip
            assert (await call(session, gw + path, method)).status == 401, path
            assert (
                await call(session, gw + path, method, headers=bearer(DIGITS_TOKEN))
            ).status == 200

        # An endpoint that does not ask for tokens serves without one.
        open_reply = await call(session, gw + INFER.format("other"))
        assert open_reply.status == 200
        assert open_reply.json()["authorization"] == f"Bearer {FLEET_SECRET}"

        # Revocation: the next table no longer carries the digest.
        left = {token_digest(OTHER_TOKEN): "other"}
        gateway.set_routes(table(digits, other, generation=2).model_copy(
            update={"inference_tokens": left}))  # fmt: skip
        assert (await call(session, url, headers=bearer(DIGITS_TOKEN))).status == 401


def replica_saw_nothing_yet(gateway: Gateway) -> bool:
    """No request was forwarded: every refusal came before the proxy."""
    return gateway.metrics.exposition().count(b"ferryman_gateway_requests_total{") == 0


async def test_without_a_fleet_secret_the_client_authorization_is_still_not_forwarded(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    async with standins(StandIn("v1")) as (replica,), serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100, replica))))
        reply = await call(session, gw + INFER.format("digits"), headers=bearer(DIGITS_TOKEN))
        assert reply.status == 200
        assert reply.json()["authorization"] == ""
