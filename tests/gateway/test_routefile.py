"""The route file: loaded at start, reloaded on change, a bad file ignored (last good stays)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from ferryman.config import GatewaySettings
from ferryman.gateway import Gateway
from ferryman.gateway.routes import RouteTable
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


def write_atomically(path: Path, text: str) -> None:
    """As the control plane writes it: a temp file, then a rename over the old one."""
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    os.replace(temp, path)


def reload_errors(gateway: Gateway) -> float:
    return sample(
        gateway.metrics.exposition().decode(), "ferryman_gateway_route_reload_errors_total"
    )


async def until_generation(gateway: Gateway, generation: int) -> None:
    async with asyncio.timeout(5):
        while gateway.routes.generation != generation:
            await asyncio.sleep(0.01)


async def test_the_route_file_is_followed_and_a_bad_one_ignored(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.json"
    gateway = make_gateway(routes, routes_poll_interval_s=0.02)
    async with standins(StandIn("v1"), StandIn("v2")) as (a, b):
        write_atomically(routes, table(endpoint(variant("v1", 100, a))).model_dump_json())
        async with serving(gateway, "on") as gw:
            url = gw + INFER.format("digits")
            assert (await call(session, url)).variant == "v1"  # read at start
            assert gateway.routes.generation == 1
            second = table(endpoint(variant("v2", 100, b, version=2)), generation=2)
            write_atomically(routes, second.model_dump_json())
            await until_generation(gateway, 2)
            assert (await call(session, url)).variant == "v2"
            for count, bad in enumerate(('{"generation": 3', '{"generation": 3, "endpoints": 1}')):
                write_atomically(routes, bad)
                async with asyncio.timeout(5):
                    while reload_errors(gateway) < count + 1:
                        await asyncio.sleep(0.01)
            assert gateway.routes.generation == 2
            assert (await call(session, url)).variant == "v2"


def test_a_table_with_foreign_backends_is_refused_unless_allowed(tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    body = table(endpoint(variant("v1", 100, "http://127.0.0.1:9"))).model_dump_json()
    write_atomically(routes, body.replace("127.0.0.1", "replica-7"))
    gateway = Gateway(GatewaySettings(), routes_file=routes)
    assert gateway.route_file is not None
    assert not gateway.route_file.check()
    assert gateway.routes == RouteTable(generation=0, endpoints={})
    allowed = Gateway(GatewaySettings(backend_hosts=("replica-7",)), routes_file=routes)
    assert allowed.route_file is not None
    assert allowed.route_file.check()
    assert allowed.routes.endpoints["digits"].variants[0].backends == ("http://replica-7:9",)
