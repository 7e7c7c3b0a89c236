"""Payload-log benchmark: does the log keep up with a replica at its highest rate?

A real ``ferryman serve`` replica of the digits CNN (``bench/peers/models.py``) is loaded by
``wrk`` (one thread, closed loop, batch-1 JSON) at the given concurrency while the payload
collection reads it into a registry (SQLite) on its own thread, as the control loop runs
it (a pass every ``--interval-s``, the next at once while one leaves records unread).
Afterwards: requests answered (the replica's own count), collected into the registry,
sampled out at the declared rate, dropped before collection, and what the collector spent
(this process's CPU seconds: it does nothing else meanwhile). The counts must add up:
nothing silent.

    PYTHONPATH=src python bench/monitor/payload_log.py [--seconds 10] [--concurrency 64]
        [--sample-rate 1.0] [--capacity 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parents[1] / "peers"))
from bench.wrk import Load, run_wrk
from models import build

from ferryman.artifacts import LocalArtifactStore
from ferryman.control.monitor.collector import PayloadCollection, PayloadCollector, Retention
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.registry import Database, Registry
from ferryman.registry.tables import PayloadRow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_replica(
    args: argparse.Namespace, model: Path, work: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``ferryman serve`` with the log's capacity and sample rate; ready to answer."""
    port = free_port()
    env = os.environ | {
        "FERRYMAN_SERVING__PAYLOAD_SAMPLE_RATE": str(args.sample_rate),
        "FERRYMAN_SERVING__PAYLOAD_LOG_CAPACITY": str(args.capacity),
    }
    command = [sys.executable, "-m", "ferryman", "--data-dir", str(work / "data"), "serve",
               str(model), "--name", "m", "--port", str(port)]  # fmt: skip
    replica = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return replica, url
        except httpx.TransportError:
            time.sleep(0.1)
    replica.kill()
    raise SystemExit("the replica did not become ready in 60 s")


def drive(
    args: argparse.Namespace, url: str, registry: Registry, body: bytes
) -> tuple[float, float]:
    """wrk against the replica while the collector runs: (req/s, the collector's CPU s)."""
    variant = VariantRoute(name="v1", model="m", version=1, weight=100, backends=(url,))
    table = RouteTable(
        generation=1, endpoints={"m": EndpointRoute(endpoint="m", variants=(variant,))}
    )
    with httpx.Client(timeout=10) as http:
        collector = PayloadCollector(registry, http, Retention())
        collection = PayloadCollection(collector, lambda: table, args.interval_s)
        started = time.process_time()
        collection.start()
        found = run_wrk(f"{url}/v2/models/m/infer", body, {"Content-Type": "application/json"},
                        Load(args.seconds, args.concurrency))  # fmt: skip
        collection.stop()
        while collector.tick(table):  # what is left in the ring after the load
            pass
        cpu_s = time.process_time() - started
    return found.requests_per_s, cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sample-rate", type=float, default=1.0)
    parser.add_argument("--capacity", type=int, default=10_000)
    parser.add_argument("--interval-s", type=float, default=1.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="payload-log-"))
    (model,) = [m for m in build(Path(__file__).parents[1] / "peers" / ".work" / "models")
                if m.name == "digits"]  # fmt: skip
    database = Database(f"sqlite:///{work / 'registry.db'}")
    database.migrate()
    registry = Registry(database, LocalArtifactStore(work / "artifacts"))
    replica, url = start_replica(args, model.path, work)
    try:
        rate, cpu_s = drive(args, url, registry, model.body())
    finally:
        replica.terminate()
        replica.wait(timeout=30)
    (tally,) = registry.payloads.tallies("m")
    with database.reading() as session:
        collected = int(session.scalar(select(func.count()).select_from(PayloadRow)) or 0)
    accounted = collected + tally.sampled_out + tally.dropped
    result = Table(title=f"Payload log at a replica's highest rate (wrk c={args.concurrency}, "
                   f"{args.seconds} s, collect every {args.interval_s:g} s)")  # fmt: skip
    for column in ("req/s", "answered", "collected", "sampled out", "dropped",
                   "accounted for", "collector CPU s"):  # fmt: skip
        result.add_column(column, justify="right")
    result.add_row(f"{rate:,.0f}", f"{tally.answered:,}", f"{collected:,}",
                   f"{tally.sampled_out:,} (rate {tally.sample_rate:g})", f"{tally.dropped:,}",
                   f"{accounted:,} of {tally.answered:,}", f"{cpu_s:.2f}")  # fmt: skip
    Console().print(result)
    shutil.rmtree(work, ignore_errors=True)
    if accounted != tally.answered:
        raise SystemExit("the counts do not add up: a silent loss")


if __name__ == "__main__":
    main()
