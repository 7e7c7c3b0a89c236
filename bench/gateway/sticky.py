"""The gateway's own CPU per request on a sticky route: the per-key cap off vs on.

    .venv/bin/python bench/gateway/sticky.py [--requests 20000] [--repeat 7] [--keys 10000]
    .venv/bin/python bench/gateway/sticky.py --per-key 1000000   # no request over the cap

As ``inprocess.py``: the gateway's ASGI app driven directly, 64 requests in flight, over a
transport that answers at once, so what is timed is the gateway alone. Endpoint ``digits``
splits 90/10 by the sticky header ``x-user-id``; requests carry ``--keys`` distinct keys in
turn. Two gateways differ in one thing: whether each key's share of the judged traffic is
capped (``gateway.sticky_judged_per_key``; the cap off is the gateway before it). With the
default cap and 10,000 keys most requests of a run are over it (capped); ``--per-key`` high
times the bookkeeping of requests under it. Rounds
alternate and the best round of each is kept: other load only ever adds time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ferryman.config import GatewaySettings
from ferryman.gateway import Gateway
from ferryman.gateway.routes import RouteTable

sys.path.insert(0, str(Path(__file__).parent))
from inprocess import InstantTransport, drive
from run import BODY, PATH

BACKEND = "http://127.0.0.1:9"


def sticky_table() -> RouteTable:
    variants = [
        {"name": name, "model": "digits", "version": version, "weight": weight,
         "backends": [BACKEND]}
        for name, version, weight in (("v1", 1, 90), ("v2", 2, 10))
    ]  # fmt: skip
    route = {"endpoint": "digits", "variants": variants, "sticky_header": "x-user-id"}
    return RouteTable.model_validate({"generation": 1, "endpoints": {"digits": route}})


def sticky_scopes(body: bytes, keys: int) -> Callable[[int], dict[str, Any]]:
    """The n-th request's scope: one of ``keys`` sticky keys in turn."""
    scopes = [
        {"type": "http", "method": "POST", "path": PATH, "headers": [
            (b"host", b"127.0.0.1:8000"), (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"), (b"x-user-id", b"user-%d" % n)]}
        for n in range(keys)
    ]  # fmt: skip

    def scope(n: int) -> dict[str, Any]:
        chosen = scopes[n % keys]
        return {**chosen, "headers": list(chosen["headers"])}

    return scope


async def main(args: argparse.Namespace) -> None:
    body = json.dumps(BODY).encode()
    gateways: dict[str, Gateway] = {}
    for label in ("off", "on"):
        settings = GatewaySettings(sticky_judged_per_key=args.per_key)
        gateway = Gateway(settings, transport=InstantTransport)
        await gateway.start()
        gateway.set_routes(sticky_table())
        if label == "off":
            gateway.metrics.key_cap = None
        await drive(
            gateway, body, 2000, args.concurrency, sticky_scopes(body, args.keys)
        )  # warm-up
        gateways[label] = gateway
    gc.freeze()
    best = {label: float("inf") for label in gateways}
    for _ in range(args.repeat):
        for label, gateway in gateways.items():
            started = time.process_time()
            await drive(
                gateway, body, args.requests, args.concurrency, sticky_scopes(body, args.keys)
            )
            spent_us = (time.process_time() - started) / args.requests * 1e6
            best[label] = min(best[label], spent_us)
    for gateway in gateways.values():
        await gateway.close()
    off, on = best["off"], best["on"]
    print(f"gateway CPU per request, sticky route, {args.keys} keys, c{args.concurrency}, "
          f"best of {args.repeat}:")  # fmt: skip
    print(f"  key cap off: {off:.2f} µs")
    print(f"  key cap on:  {on:.2f} µs ({on - off:+.2f} µs)")
    print(f"  gateway-only throughput ratio on/off: {off / on:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-key", type=int, default=10, help="the cap (10: the default)")
    asyncio.run(main(parser.parse_args()))
