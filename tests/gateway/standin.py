"""A stand-in replica for gateway tests and benchmarks: a tiny ASGI app on real HTTP.

It is not the data plane: it does no inference. It answers the protocol paths the gateway
forwards with a V2-shaped JSON body that names its variant and echoes the ``x-request-id``
header, so tests can tell which replica served what. Knobs: a fixed delay, a status, the
output values, and a file that gets each request id on arrival (before any answer), which
survives a ``kill -9``. Run as a process with ``python -m tests.gateway.standin``
on a listening socket it inherits (``--fd``), so nobody waits for it to bind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]


@dataclass
class StandIn:
    """An ASGI app that answers like a replica of ``variant``."""

    variant: str
    delay_s: float = 0.0
    status: int = 200
    outputs: tuple[float, ...] = (0.1, 0.7, 0.2)
    log_file: Path | None = None
    received: list[str] = field(default_factory=list)

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")
        self._arrived(request_id)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        body = json.dumps(
            {
                "model_name": scope["path"].split("/")[3] if scope["path"].count("/") > 2 else "",
                "path": scope["path"],
                "variant": self.variant,
                "id": request_id,
                "host": headers.get("host", ""),
                "connection": headers.get("connection", ""),
                "authorization": headers.get("authorization", ""),
                "outputs": [
                    {"name": "p", "datatype": "FP32", "shape": [1, 3], "data": list(self.outputs)}
                ],
            }
        ).encode()
        start = {"type": "http.response.start", "status": self.status}
        start["headers"] = [
            (b"content-type", b"application/json"),
            (b"x-replica", self.variant.encode()),
        ]
        await send(start)
        await send({"type": "http.response.body", "body": body})

    def _arrived(self, request_id: str) -> None:
        self.received.append(request_id)
        if self.log_file is not None:
            with self.log_file.open("a") as log:
                log.write(request_id + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="A listening TCP socket to serve.")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--log-file", type=Path)
    args = parser.parse_args()
    app = StandIn(args.variant, delay_s=args.delay_s, log_file=args.log_file)
    sock = socket.socket(fileno=args.fd)  # family and protocol read from the socket itself
    config = uvicorn.Config(
        app,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
