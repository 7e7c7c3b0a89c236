"""Replica failures the gateway turns into clean answers: timeouts, broken connections."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager

import aiohttp
import pytest

from ferryman.config import GatewaySettings, Settings
from ferryman.errors import Forbidden
from ferryman.gateway import Gateway
from ferryman.gateway.health import BackendHealth
from ferryman.gateway.messages import Answer
from ferryman.gateway.server import build_server
from ferryman.gateway.transport import Upstream
from tests.figures import Figures
from tests.gateway.conftest import (
    INFER,
    call,
    endpoint,
    listening_socket,
    serving,
    standins,
    table,
    variant,
)
from tests.gateway.standin import StandIn


class Breaking:
    """A replica process that reads a whole request (as a replica does before it runs the
    model), then dies without an answer (raw TCP)."""

    def __init__(self) -> None:
        self.received = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
        await reader.readexactly(int(length.group(1)) if length else 0)
        self.received += 1
        writer.close()


# A replica process that takes connections but never reads them, as one being killed does
# (its sockets stay open until the kernel has torn the process down); it says when a
# request is waiting unread in a socket, so the test can kill it at that moment.
NEVER_READS = """
import select, socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
poller, held = select.poll(), {}
poller.register(listener, select.POLLIN)
while True:
    for fd, _ in poller.poll():
        if fd == listener.fileno():
            connection, _ = listener.accept()
            held[connection.fileno()] = connection
            poller.register(connection, select.POLLIN)
        else:
            print("unread", flush=True)
            poller.unregister(fd)
"""


@asynccontextmanager
async def breaking_replica(replica: Breaking) -> AsyncIterator[str]:
    server = await asyncio.start_server(replica.handle, sock=listening_socket())
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@pytest.mark.anyio
async def test_a_slow_replica_gets_504_at_the_deadline_and_the_next_request_is_served(
    make_gateway: Callable[..., Gateway],
    session: aiohttp.ClientSession,
    request: pytest.FixtureRequest,
) -> None:
    """RELIABILITY F4 at the gateway: the replica takes 5 s, the deadline is 2 s: 504 in
    2.0-2.3 s, and the next request is served."""
    gateway = make_gateway(request_timeout_s=2.0)
    slow, fast = StandIn("slow", delay_s=5.0), StandIn("fast")
    async with standins(slow, fast) as (a, b), serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100, a))))
        started = time.monotonic()
        reply = await call(session, gw + INFER.format("digits"))
        waited_s = time.monotonic() - started
        gateway.set_routes(table(endpoint(variant("v1", 100, b)), generation=2))
        after = await call(session, gw + INFER.format("digits"))
    figures = Figures("F4", request.node.nodeid)
    figures.check(
        "gateway 504 of a 5 s replica", "504 in 2.0-2.3 s", f"{reply.status} in {waited_s:.2f} s",
        reply.status == 504 and 2.0 <= waited_s <= 2.3,
    )  # fmt: skip
    figures.check("gateway, next request", "200", str(after.status), after.status == 200)
    figures.verify()
    assert "request_timeout_s" in reply.json()["error"]


@pytest.mark.anyio
async def test_a_frozen_replica_costs_one_try_deadline_and_new_requests_go_elsewhere(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    """Issue 13: the per-try deadline (not the 30 s request deadline) ends a request on a
    replica that does not answer, and marks the replica down so the next ones skip it."""
    gateway = make_gateway(try_timeout_s=0.3, request_timeout_s=30, backend_recheck_s=30)
    frozen, healthy = StandIn("frozen", delay_s=5.0), StandIn("healthy")
    async with standins(frozen, healthy) as (a, b), serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100, a, b))))
        started = time.monotonic()
        replies = await asyncio.gather(
            *(call(session, gw + INFER.format("digits")) for _ in range(2))
        )
        assert sorted(reply.status for reply in replies) == [200, 504]
        assert time.monotonic() - started < 1.5
        assert "try_timeout_s" in next(r for r in replies if r.status == 504).json()["error"]
        after = [await call(session, gw + INFER.format("digits")) for _ in range(10)]
        assert [reply.status for reply in after] == [200] * 10
        assert len(frozen.received) == 1  # the timed-out request was never sent again


@pytest.mark.anyio
async def test_a_request_that_crashes_its_replica_fails_alone_and_the_replica_is_skipped(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    """RELIABILITY F3b at the gateway: the crash is a 502 for that request only, it is not
    sent to another replica, and the next requests go to the live replica at once."""
    gateway = make_gateway(backend_recheck_s=30)
    crashing, healthy = Breaking(), StandIn("healthy")
    async with (
        breaking_replica(crashing) as a,
        standins(healthy) as (b,),
        serving(gateway, "on") as gw,
    ):
        gateway.set_routes(table(endpoint(variant("v1", 100, a, b))))
        statuses: list[int] = []
        while crashing.received == 0 and len(statuses) < 10:
            statuses.append((await call(session, gw + INFER.format("digits"))).status)
        assert statuses[-1] == 502
        served_before = len(healthy.received)
        after = [(await call(session, gw + INFER.format("digits"))).status for _ in range(10)]
        assert after == [200] * 10
        assert crashing.received == 1
        assert len(healthy.received) == served_before + 10  # the crash was not retried there


@pytest.mark.anyio
async def test_a_request_unread_by_a_killed_replica_is_served_by_another(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    """RELIABILITY F1 at the gateway: a replica `kill -9`ed while a request waits unread in
    its socket (or arrives as it is torn down) never processed it; its kernel resets the
    connection, and the request goes to the other replica: no failure."""
    gateway = make_gateway(backend_recheck_s=30)
    killed = subprocess.Popen(
        [sys.executable, "-c", NEVER_READS], stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    try:
        assert killed.stdout is not None
        port = int(killed.stdout.readline())
        healthy = StandIn("healthy")
        async with standins(healthy) as (b,), serving(gateway, "on") as gw:
            gateway.set_routes(table(endpoint(variant("v1", 100, f"http://127.0.0.1:{port}", b))))
            pending = []
            while True:  # replicas take turns: until one request waits unread in the killed
                pending.append(asyncio.ensure_future(call(session, gw + INFER.format("digits"))))
                await asyncio.wait({pending[-1]}, timeout=0.3)
                if not pending[-1].done():
                    break
                assert len(pending) < 10, "no request reached the replica that never reads"
            line = await asyncio.to_thread(killed.stdout.readline)
            assert line.strip() == "unread"
            os.kill(killed.pid, signal.SIGKILL)
            replies = await asyncio.gather(*pending)
        assert [reply.status for reply in replies] == [200] * len(replies)
        assert len(healthy.received) == len(replies)  # the unread one included
    finally:
        killed.kill()
        killed.wait()


@pytest.mark.anyio
async def test_a_request_that_reached_a_replica_is_never_retried(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    breaking, healthy = Breaking(), StandIn("healthy")
    async with (
        breaking_replica(breaking) as a,
        standins(healthy) as (b,),
        serving(gateway, "on") as gw,
    ):
        gateway.set_routes(table(endpoint(variant("v1", 100, a))))
        reply = await call(session, gw + INFER.format("digits"))
        assert reply.status == 502
        assert reply.json() == {"error": "the replica closed the connection mid-request"}
        assert breaking.received == 1
        gateway.set_routes(table(endpoint(variant("v1", 100, a, b)), generation=2))
        await asyncio.gather(*(call(session, gw + INFER.format("digits")) for _ in range(20)))
        assert breaking.received + len(healthy.received) == 21  # one attempt per request


def test_passive_health_marks_expire_on_the_clock_or_with_a_new_table() -> None:
    now = [100.0]
    health = BackendHealth(recheck_s=2.0, clock=lambda: now[0])
    health.mark_down("http://127.0.0.1:1")
    assert health.live(["http://127.0.0.1:1", "http://127.0.0.1:2"]) == ["http://127.0.0.1:2"]
    now[0] += 1.9
    assert not health.is_up("http://127.0.0.1:1")
    now[0] += 0.1
    assert health.is_up("http://127.0.0.1:1")
    health.mark_down("http://127.0.0.1:1")
    health.reset()
    assert health.is_up("http://127.0.0.1:1")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_a_non_loopback_bind_is_refused_without_the_insecure_flag(host: str) -> None:
    settings = Settings(gateway={"host": host})
    with pytest.raises(Forbidden, match="not loopback"):
        build_server(settings, Gateway(settings.gateway))
    allowed = Settings(
        gateway={"host": host, "allow_insecure_bind": True}, connections={"insecure_http": True}
    )
    assert build_server(allowed, Gateway(allowed.gateway)).config.host == host


class Exploding:
    """A transport with a bug in it: the gateway must still answer ``{"error": ...}``."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings

    async def send(self, backend: str, request: Upstream) -> Answer:
        raise RuntimeError("a bug")

    def retain(self, backends: Collection[str]) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.mark.anyio
async def test_a_bug_still_answers_in_the_protocol_shape(session: aiohttp.ClientSession) -> None:
    gateway = Gateway(GatewaySettings(), transport=Exploding)
    async with serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100, "http://127.0.0.1:9"))))
        reply = await call(session, gw + INFER.format("digits"))
        assert reply.status == 500
        assert reply.json() == {"error": "the gateway failed; see its log"}


class ClosingAfterEachAnswer:
    """A replica that answers (keep-alive, by HTTP/1.1 default) and then closes anyway."""

    def __init__(self) -> None:
        self.answered = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length")
        )
        await reader.readexactly(length)
        body = b'{"outputs": []}'
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        self.answered += 1
        writer.close()


@pytest.mark.anyio
async def test_replicas_closing_idle_connections_cause_no_failures(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    gateway = make_gateway()
    closing = ClosingAfterEachAnswer()
    server = await asyncio.start_server(closing.handle, sock=listening_socket())
    async with server, serving(gateway, "on") as gw:
        backend = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        gateway.set_routes(table(endpoint(variant("v1", 100, backend))))
        statuses = [(await call(session, gw + INFER.format("digits"))).status for _ in range(30)]
        assert statuses == [200] * 30
        assert closing.answered == 30


@pytest.mark.anyio
async def test_a_trickling_body_is_cut_off_at_the_request_timeout(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(request_timeout_s=0.3)
    async with standins(StandIn("v1")) as (a,), serving(gateway, "on") as gw:
        gateway.set_routes(table(endpoint(variant("v1", 100, a))))
        host, port = gw.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        started = time.monotonic()
        head = b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += b"Content-Length: 100\r\n\r\n"
        writer.write(head + b"x" * 10)  # and never the other 90 bytes
        response = await asyncio.wait_for(reader.read(200), timeout=10)
        writer.close()
        assert response.startswith(b"HTTP/1.1 504 ")
        assert 0.3 <= time.monotonic() - started < 1.5
