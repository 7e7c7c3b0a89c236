"""RELIABILITY F1 at the gateway: ``kill -9`` a replica process under load.

Only requests in flight on the killed replica may fail; the gateway stops sending to it
(a refused connection marks it down at once and the request goes to the other replica);
and no request that reached the killed replica is sent again elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ferryman.gateway import Gateway
from tests.gateway.conftest import (
    INFER,
    endpoint,
    listening_socket,
    sample,
    serving,
    table,
    variant,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]
TOTAL = 800
MAX_REQUESTS = 20_000
KILL_AT = 200
WORKERS = 16


@dataclass
class Replica:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def ids(self) -> set[str]:
        return set(self.log.read_text().split()) if self.log.exists() else set()


def start_replica(name: str, tmp_path: Path, delay_s: float) -> Replica:
    """A stand-in replica process serving a socket this test bound (no wait for a port)."""
    sock = listening_socket()
    log = tmp_path / f"{name}.log"
    command = [sys.executable, "-m", "tests.gateway.standin", "--fd", str(sock.fileno())]
    command += ["--variant", name, "--delay-s", str(delay_s), "--log-file", str(log)]
    process = subprocess.Popen(command, cwd=ROOT, pass_fds=[sock.fileno()])
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    return Replica(url, log, process)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started = [start_replica(name, tmp_path, 0.005) for name in ("a", "b")]
    yield started
    for replica in started:
        replica.process.kill()
        replica.process.wait(timeout=10)


@dataclass
class Outcome:
    request_id: str
    started: float
    status: int
    replica: str


async def load(
    session: aiohttp.ClientSession, url: str, on_count: Callable[[int], float | None]
) -> list[Outcome]:
    """WORKERS closed-loop workers until TOTAL requests and 1.5 s after the kill (bounded)."""
    outcomes: list[Outcome] = []
    ids = iter(range(MAX_REQUESTS))

    async def worker() -> None:
        for index in ids:
            killed_at = on_count(len(outcomes))
            is_done = len(outcomes) >= TOTAL and killed_at is not None
            if is_done and time.monotonic() > killed_at + 1.5:  # type: ignore[operator]
                return
            started = time.monotonic()
            outcome = Outcome(str(index), started, 0, "")
            try:
                async with session.post(url, data=b"{}", headers={"x-request-id": str(index)}) as r:
                    outcome.status = r.status
                    outcome.replica = (await r.json(content_type=None)).get("variant", "")
            except aiohttp.ClientError:
                pass
            outcomes.append(outcome)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(WORKERS))), timeout=60)
    return outcomes


async def test_kill_9_fails_only_in_flight_requests(
    make_gateway: Callable[..., Gateway], replicas: list[Replica]
) -> None:
    a, b = replicas
    gateway = make_gateway(backend_recheck_s=0.5)
    gateway.set_routes(table(endpoint(variant("v1", 100, a.url, b.url))))
    killed_at: list[float] = []

    def kill_once(count: int) -> float | None:
        if count >= KILL_AT and not killed_at:
            os.kill(a.process.pid, signal.SIGKILL)
            a.process.wait(timeout=10)  # it is dead from here on (a few ms on the loop)
            killed_at.append(time.monotonic())
        return killed_at[0] if killed_at else None

    async with serving(gateway, "on") as gw, aiohttp.ClientSession() as session:
        outcomes = await load(session, gw + INFER.format("digits"), kill_once)
        metrics = gateway.metrics.exposition().decode()
    kill = killed_at[0]
    failed = [o for o in outcomes if o.status != 200]
    assert len(outcomes) >= TOTAL
    assert len(failed) <= WORKERS, failed  # at most what was in flight
    assert all(o.started < kill for o in failed), [o for o in failed if o.started >= kill]
    # A failed request was on its way to the killed replica: in its socket buffer, its parser
    # or its app (only the last is in its log). None of them went to the other replica.
    assert not {o.request_id for o in failed} & b.ids()
    late = [o for o in outcomes if o.started > kill + 1.0]
    assert late, "the load ended within 1 s of the kill"
    assert {(o.status, o.replica) for o in late} == {(200, "b")}
    assert not a.ids() & b.ids(), "a request that reached the killed replica was sent again"
    assert sample(metrics, "ferryman_gateway_backend_down_total", variant="v1") >= 1
