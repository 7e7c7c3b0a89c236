"""The payload log at a replica's highest rate: nothing is lost silently.

A real ``ferryman serve`` process on 127.0.0.1 is driven for a bounded few seconds by a
closed loop of keep-alive connections (as fast as it answers), while the collector reads it
on its own thread as the control loop does. Every request sent is then either collected,
counted as sampled out at the declared rate (exactly the ids the shared rule leaves out),
or counted as dropped unread; the counts add up to the requests sent, and the registry's
tallies say the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ferryman.control.monitor.collector import PayloadCollection, PayloadCollector, Retention
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.protocol.payload_sampling import is_logged
from ferryman.registry import Feedback, FeedbackStatus, Registry
from ferryman.registry.tables import PayloadRow
from tests.serving.conftest import affine_model
from tests.support import free_port

pytestmark = pytest.mark.e2e

LOAD_S = 3.0
CONNECTIONS = 16
BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def start_replica(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []
    model = tmp_path / "tiny.onnx"
    model.write_bytes(affine_model())

    def start(**serving: object) -> Replica:
        port = free_port()
        environment = {**os.environ, "FERRYMAN_LOG_LEVEL": "WARNING"}
        environment.update({f"FERRYMAN_SERVING__{k.upper()}": str(v) for k, v in serving.items()})
        command = [sys.executable, "-m", "ferryman", "serve", str(model), "--name", "tiny",
                   "--port", str(port), "--data-dir", str(tmp_path / "data")]  # fmt: skip
        process = subprocess.Popen(command, env=environment)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        return Replica(url, process)

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.wait(timeout=30)


def wait_ready(url: str) -> None:
    """A process on its own: poll its readiness, bounded (there is no event to await)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"the replica did not become ready at {url} within 60 s")


async def closed_loop(port: int, seconds: float) -> tuple[list[str], int]:
    """Requests sent back to back on ``CONNECTIONS`` keep-alive connections for ``seconds``:
    the request id of every answer, and how many answers were not 200."""
    request = (
        b"POST /v2/models/tiny/infer HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )
    ids: list[str] = []
    failed = 0
    stop_at = time.monotonic() + seconds

    async def connection() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop_at:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                await reader.readexactly(int(headers["content-length"]))
                ids.append(headers["ferryman-request-id"])
                failed += lines[0].split(" ")[1] != "200"
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return ids, failed


class Collecting:
    """The collection on its own thread, a pass every ``interval_s`` (as the control loop
    runs it)."""

    def __init__(self, registry: Registry, url: str, interval_s: float) -> None:
        route = VariantRoute(name="v1", model="tiny", version=1, weight=100, backends=(url,))
        self.table = RouteTable(
            generation=1, endpoints={"tiny": EndpointRoute(endpoint="tiny", variants=(route,))}
        )
        self._http = httpx.Client(timeout=10)
        self.collector = PayloadCollector(registry, self._http, Retention())
        self._collection = PayloadCollection(self.collector, lambda: self.table, interval_s)

    def __enter__(self) -> Collecting:
        self._collection.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._collection.stop()
        self.collector.tick(self.table)  # the last records, after the load
        self._http.close()


def collected_ids(registry: Registry) -> list[str]:
    with registry._db.reading() as session:
        return list(session.scalars(select(PayloadRow.request_id)))


@pytest.mark.parametrize(
    ("serving", "interval_s"),
    [
        pytest.param({}, 1.0, id="defaults"),
        pytest.param({"payload_sample_rate": 0.3}, 1.0, id="sampled"),
        pytest.param({"payload_log_capacity": 200}, 0.5, id="tiny-ring"),
    ],
)
def test_every_request_is_collected_or_counted(
    start_replica: object,
    registry: Registry,
    serving: dict[str, object],
    interval_s: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replica = start_replica(**serving)  # type: ignore[operator]
    port = int(replica.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), Collecting(registry, replica.url, interval_s):
        sent, failed = asyncio.run(closed_loop(port, LOAD_S))
    elapsed_s = time.monotonic() - started
    assert failed == 0
    kept = collected_ids(registry)
    (tally,) = registry.payloads.tallies("tiny")
    rate = float(serving.get("payload_sample_rate", 1.0))  # type: ignore[arg-type]
    print(  # the figures the report quotes (pytest -s)
        f"\n{serving or 'defaults'}: sent {len(sent)} in {elapsed_s:.1f} s "
        f"({len(sent) / LOAD_S:.0f}/s), collected {len(kept)}, sampled out "
        f"{tally.sampled_out}, dropped {tally.dropped}"
    )
    assert tally.answered == len(sent)
    assert len(kept) + tally.sampled_out + tally.dropped == len(sent)
    assert set(kept) <= set(sent)
    assert len(set(kept)) == len(kept)  # each kept once
    assert tally.sampled_out == sum(not is_logged(i, rate) for i in sent)
    assert all(is_logged(i, rate) for i in kept)
    assert tally.sample_rate == rate
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    if tally.dropped:
        assert len(warnings) == 1  # once per window, with the count
    if "payload_log_capacity" in serving:
        assert tally.dropped > 0  # a 200-record ring at this rate must overflow: counted
    if rate < 1:
        left_out = next(i for i in sent if not is_logged(i, rate))
        (result,) = registry.payloads.give_feedback(
            [Feedback(request_id=left_out, label="a")], "alice"
        )
        assert result.status is FeedbackStatus.SAMPLED_OUT
