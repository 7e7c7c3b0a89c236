"""Replica memory under sustained load: does the digits replica's RSS plateau?

One ``ferryman serve digits:1`` replica (the digits-sized model of ``models.py``, served from
a registry as a deployment's replica is) gets a fixed arrival rate of batch-1 JSON requests
(open loop: each request is due at its own time, whatever the answers before it did) over
keep-alive connections on 127.0.0.1, for a bounded time. Every ``--every-s`` the table
gets a row: requests answered and failed so far, the replica's RSS, open files and
threads. The verdict compares the growth of the last half with the first.

    PYTHONPATH=src python bench/serving/soak_rss.py [--rate 200] [--seconds 240]
        [--every-s 15] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from models import digits_mlp
from replica import rss_mib, stop, wait_ready
from run import free_port

BODY = (
    b'{"inputs":[{"name":"pixels","shape":[1,1,8,8],"datatype":"FP32","data":['
    + b",".join(b"%.3f" % (i / 64) for i in range(64))
    + b"]}]}"
)


@dataclass
class Counts:
    answered: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Reading:
    at_s: float
    answered: int
    failed: int
    rss_mib: float
    fds: int
    threads: int


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def one_connection(
    port: int, queue: asyncio.Queue[float | None], counts: Counts, path: str
) -> None:
    """Send each request taken from ``queue`` on one keep-alive connection."""
    head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(BODY)}\r\n\r\n").encode()  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (due := await queue.get()) is not None:
            del due
            writer.write(head + BODY)
            answer = await reader.readuntil(b"\r\n\r\n")
            lines = answer.decode("latin-1").split("\r\n")
            length = next(int(v) for k, _, v in (line.partition(": ") for line in lines)
                          if k.lower() == "content-length")  # fmt: skip
            await reader.readexactly(length)
            if lines[0].split(" ")[1] == "200":
                counts.answered += 1
            else:
                counts.failed += 1
    finally:
        writer.close()


async def soak(args: argparse.Namespace, port: int, pid: int) -> list[Reading]:
    """Requests due every 1/rate s for ``seconds``; a reading every ``every_s``."""
    counts = Counts()
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    path = "/v2/models/digits/infer"
    workers = [
        asyncio.create_task(one_connection(port, queue, counts, path))
        for _ in range(args.connections)
    ]
    readings = [Reading(0.0, 0, 0, rss_mib(pid), fds_of(pid), threads_of(pid))]
    started = time.monotonic()
    total = int(args.rate * args.seconds)
    next_reading = args.every_s
    for index in range(total):
        due = started + index / args.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        queue.put_nowait(due)
        elapsed = time.monotonic() - started
        if elapsed >= next_reading:
            readings.append(Reading(elapsed, counts.answered, counts.failed, rss_mib(pid),
                                    fds_of(pid), threads_of(pid)))  # fmt: skip
            next_reading += args.every_s
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - started
    readings.append(Reading(elapsed, counts.answered, counts.failed, rss_mib(pid),
                            fds_of(pid), threads_of(pid)))  # fmt: skip
    return readings


def report(readings: list[Reading], args: argparse.Namespace, console: Console) -> None:
    table = Table(title=f"digits replica at {args.rate:g} req/s for {args.seconds} s "
                  f"(load average before: {args.load_before:.2f})")  # fmt: skip
    for column in ("t s", "answered", "failed", "req/s so far", "RSS MiB", "Δ RSS MiB", "fds",
                   "threads"):  # fmt: skip
        table.add_column(column, justify="right")
    first = readings[0].rss_mib
    for r in readings:
        rate = r.answered / r.at_s if r.at_s else 0.0
        table.add_row(f"{r.at_s:.0f}", f"{r.answered:,}", f"{r.failed:,}", f"{rate:.0f}",
                      f"{r.rss_mib:.1f}", f"{r.rss_mib - first:+.1f}", str(r.fds),
                      str(r.threads))  # fmt: skip
    console.print(table)
    middle = readings[len(readings) // 2]
    second = readings[1]
    early = middle.rss_mib - second.rss_mib
    late = readings[-1].rss_mib - middle.rss_mib
    console.print(
        f"RSS: {first:.1f} MiB at ready, {second.rss_mib:.1f} after {second.at_s:.0f} s, "
        f"{middle.rss_mib:.1f} at {middle.at_s:.0f} s, {readings[-1].rss_mib:.1f} at the end; "
        f"growth {early:+.1f} MiB in the first half, {late:+.1f} MiB in the second: "
        + ("plateaus" if late <= max(1.0, 0.02 * middle.rss_mib) else "STILL GROWING")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=int, default=240)
    parser.add_argument("--every-s", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        model = work / "digits.onnx"
        model.write_bytes(digits_mlp())
        ferryman = [sys.executable, "-m", "ferryman", "--data-dir", str(work / "data")]
        register = [*ferryman, "register", str(model), "--model", "digits"]
        subprocess.run(register, check=True, capture_output=True)
        port = free_port()
        replica = subprocess.Popen(
            [*ferryman, "serve", "digits:1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(port)
            readings = asyncio.run(soak(args, port, replica.pid))
        finally:
            stop(replica)
    report(readings, args, Console(width=120))


if __name__ == "__main__":
    main()
