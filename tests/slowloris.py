"""Slow clients against a real server on 127.0.0.1 (RELIABILITY B8): the tools the tests share.

- :class:`SlowHttpTest` runs Debian's ``slowhttptest`` in one mode (``-H`` slow headers,
  ``-B`` slow body), again and again until its time is up: the tool opens its connections
  once and stops when the server has closed them all, where a real attacker reconnects.
- :func:`hold` opens one raw connection, trickles bytes into it and times when the server
  closes it.
- :func:`measure` is the normal client: one request on a fresh connection at a time.
"""

from __future__ import annotations

import csv
import http.client
import math
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SLOWHTTPTEST = shutil.which("slowhttptest")
needs_slowhttptest = pytest.mark.skipif(
    SLOWHTTPTEST is None,
    reason="slowhttptest is not installed (scripts/system-deps.sh installs Debian's package)",
)
Address = tuple[str, int]


@dataclass
class SlowHttpTest:
    """``slowhttptest`` in one mode against ``url``, rerun until ``seconds`` have passed."""

    mode: str  # "-H" or "-B"
    url: str
    connections: int
    seconds: float
    rate_per_s: int = 100
    interval_s: int = 2
    runs: int = 0
    most_connected: int = 0
    closed: int = 0
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(timeout=self.seconds + 60)

    def _run(self) -> None:
        assert SLOWHTTPTEST is not None
        deadline = time.monotonic() + self.seconds
        with tempfile.TemporaryDirectory() as folder:
            while (left_s := deadline - time.monotonic()) >= 1:
                prefix = Path(folder) / f"run{self.runs}"
                command = [
                    SLOWHTTPTEST, self.mode, "-c", str(self.connections), "-r",
                    str(self.rate_per_s), "-i", str(self.interval_s), "-l", str(int(left_s)),
                    "-s", "4096", "-x", "16", "-p", "3", "-u", self.url, "-g", "-o", str(prefix),
                ]  # fmt: skip
                subprocess.run(command, capture_output=True, timeout=left_s + 30, check=False)
                self.runs += 1
                self._read(prefix.with_suffix(".csv"))

    def _read(self, path: Path) -> None:
        """Columns: Seconds, Closed, Pending, Connected, Service Available (per second)."""
        if not path.exists():
            return
        with path.open() as file:
            rows = [row for row in csv.reader(file) if row and row[0].isdigit()]
        if rows:
            self.most_connected = max(self.most_connected, *(int(row[3]) for row in rows))
            self.closed += int(rows[-1][1])


@dataclass(frozen=True)
class Held:
    """One raw connection: when the server closed it (inf: it did not) and what it said."""

    closed_after_s: float
    answer: bytes


def hold(
    address: Address, opening: bytes, drip: bytes = b"", every_s: float = 1.0, limit_s: float = 40
) -> Held:
    """Send ``opening``, then ``drip`` every ``every_s``; read until the server closes."""
    sock = socket.create_connection(address, timeout=5)
    start = time.monotonic()
    answer = b""
    try:
        sock.sendall(opening)
        next_drip = start + every_s
        while (now := time.monotonic()) - start < limit_s:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return Held(time.monotonic() - start, answer)
                answer += chunk
            if drip and now >= next_drip:
                try:
                    sock.sendall(drip)
                except OSError:  # closed under our feet: the next recv says when
                    drip = b""
                next_drip += every_s
        return Held(math.inf, answer)
    finally:
        sock.close()


def hold_in_thread(*args: object, **kwargs: object) -> Callable[[], Held]:
    """:func:`hold` in a thread; returns a function that waits for its result."""
    result: list[Held] = []
    thread = threading.Thread(target=lambda: result.append(hold(*args, **kwargs)), daemon=True)  # type: ignore[arg-type]
    thread.start()

    def wait() -> Held:
        thread.join(timeout=120)
        return result[0]

    return wait


@dataclass(frozen=True)
class NormalRequest:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Latencies:
    ok: int
    failed: int
    seconds: tuple[float, ...]

    @property
    def p99_s(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]

    def describe(self) -> str:
        ordered = sorted(self.seconds)
        return (
            f"{self.ok}/{self.ok + self.failed} ok, p50 {ordered[len(ordered) // 2] * 1e3:.2f} ms, "
            f"p99 {self.p99_s * 1e3:.2f} ms, max {ordered[-1] * 1e3:.2f} ms"
        )


def measure(address: Address, request: NormalRequest, count: int, seconds: float) -> Latencies:
    """Up to ``count`` requests within ``seconds``, each on a fresh connection; 200 is ok."""
    ok = failed = 0
    latencies = []
    deadline = time.monotonic() + seconds
    while ok + failed < count and time.monotonic() < deadline:
        start = time.perf_counter()
        connection = http.client.HTTPConnection(*address, timeout=5)
        try:
            connection.request(request.method, request.path, request.body, request.headers)
            response = connection.getresponse()
            response.read()
            is_ok = response.status == 200
        except OSError:
            is_ok = False
        finally:
            connection.close()
        latencies.append(time.perf_counter() - start)
        ok, failed = (ok + 1, failed) if is_ok else (ok, failed + 1)
        time.sleep(0.005)  # leave the server's loop a moment for the attack
    return Latencies(ok, failed, tuple(latencies))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
