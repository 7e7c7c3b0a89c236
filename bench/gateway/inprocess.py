"""The gateway's own CPU per request, in process: inference-token checking off vs on.

    .venv/bin/python bench/gateway/inprocess.py [--requests 20000] [--repeat 7]

It drives the gateway's ASGI app directly (the scope, receive and send uvicorn would hand
it) with the digits request of ``run.py``, 64 requests in flight, over a transport that
answers at once, so what is timed is the gateway alone: route, token check, forward, answer.
Two gateways differ in one thing: whether endpoint ``digits`` requires an inference token
(its route table holds 1,000 live tokens either way; the client sends its token either
way). Rounds alternate, and the best round of each is kept: on a shared machine other load
only ever adds time, so the minimum is the cost. ``run.py --tokens`` measures the same over
sockets with wrk, replica included.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from ferryman.config import GatewaySettings
from ferryman.gateway import Gateway
from ferryman.gateway.messages import Answer
from ferryman.gateway.routes import RouteTable
from ferryman.gateway.transport import Upstream

sys.path.insert(0, str(Path(__file__).parent))
from run import BODY, FLEET_SECRET, INFER_TOKEN, PATH, route_table

REPLY = Answer(200, [(b"content-type", b"application/json")], b'{"outputs":[]}')


class InstantTransport:
    """A replica that answers every request at once (the gateway's cost alone is timed)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings

    async def send(self, backend: str, request: Upstream) -> Answer:
        return REPLY

    def retain(self, backends: Collection[str]) -> None:
        pass

    async def close(self) -> None:
        pass


def scope_of(body: bytes) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-length", b"%d" % len(body)),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {INFER_TOKEN}".encode()),
    ]
    return {"type": "http", "method": "POST", "path": PATH, "headers": headers}


async def drive(
    gateway: Gateway,
    body: bytes,
    requests: int,
    concurrency: int,
    scope: Callable[[int], dict[str, Any]] | None = None,
) -> None:
    """``requests`` of ``body``, ``concurrency`` in flight; ``scope(n)`` gives the n-th
    request's ASGI scope (default: :func:`scope_of` the body)."""
    make = scope or (lambda _: scope_of(body))
    left = requests
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(reply: dict[str, Any]) -> None:
        if reply["type"] == "http.response.start" and reply["status"] != 200:
            raise RuntimeError(f"status {reply['status']}")

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await gateway(make(left), receive, send)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def main(args: argparse.Namespace) -> None:
    body = json.dumps(BODY).encode()
    gateways: dict[str, Gateway] = {}
    for label, required in (("off", False), ("on", True)):
        gateway = Gateway(GatewaySettings(replica_token=FLEET_SECRET), transport=InstantTransport)
        await gateway.start()
        table = route_table("http://127.0.0.1:9", require_token=required)
        gateway.set_routes(RouteTable.from_json(table))
        await drive(gateway, body, 2000, args.concurrency)  # warm-up
        gateways[label] = gateway
    gc.freeze()
    best = {label: float("inf") for label in gateways}
    for _ in range(args.repeat):
        for label, gateway in gateways.items():
            started = time.process_time()
            await drive(gateway, body, args.requests, args.concurrency)
            spent_us = (time.process_time() - started) / args.requests * 1e6
            best[label] = min(best[label], spent_us)
    for gateway in gateways.values():
        await gateway.close()
    off, on = best["off"], best["on"]
    print(f"gateway CPU per request, c{args.concurrency}, best of {args.repeat}:")
    print(f"  token checking off: {off:.2f} µs")
    print(f"  token checking on:  {on:.2f} µs (+{on - off:.2f} µs)")
    print(f"  gateway-only throughput ratio on/off: {off / on:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
