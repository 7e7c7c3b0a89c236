"""A whole local Ferryman for end-to-end tests: ``ferryman up`` as a process, and load.

:class:`Stack` starts the control plane (which starts the gateway and the replicas) in a
temporary data dir with short loop intervals, and can kill and restart it. :class:`Load`
sends requests at a fixed rate from a background thread, bounded in count and time, and
records every outcome so a test can count failures in any time window.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ferryman.config import load_settings
from ferryman.gateway.routes import RouteTable
from ferryman.registry import Registry
from ferryman.runtimes.local.gateway import gateway_pids
from tests.support import free_port

BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,-2,3,-4]}]}'


@dataclass
class Stack:
    data_dir: Path
    api_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    """Settings of this stack beyond the short intervals below (FERRYMAN_… variables)."""
    up_env: dict[str, str] = field(default_factory=dict)
    """More environment for ``ferryman up`` only (e.g. libfaketime's)."""
    up_args: list[str] = field(default_factory=list)
    """Options of ``ferryman up`` (e.g. ``--runtime ray``)."""
    up_timeout_s: float = 30.0
    """How long ``ferryman up`` may take to answer (joining a Ray cluster takes longer)."""

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
        return {
            **base,
            "FERRYMAN_DATA_DIR": str(self.data_dir),
            "FERRYMAN_STATE_DIR": str(self.data_dir.parent / "state"),
            "FERRYMAN_GATEWAY__PORT": str(self.gateway_port),
            "FERRYMAN_CONTROL__PORT": str(self.api_port),
            "FERRYMAN_CONTROL__RECONCILE_INTERVAL_S": "0.2",
            "FERRYMAN_CONTROL__ROUTE_GRACE_S": "0.6",
            "FERRYMAN_CONTROL__REPLICA_STARTUP_TIMEOUT_S": "60",
            "COLUMNS": "200",
            **self.extra_env,
        }

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def ferryman(self, *args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("ferryman")), *args],
            capture_output=True, text=True, env=self.env, check=False, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def up(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "up.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("ferryman")), "up", *self.up_args],
                env={**self.env, **self.up_env}, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        healthz = f"http://127.0.0.1:{self.api_port}/healthz"
        wait_for(lambda: _answers(healthz), self.up_timeout_s, "control plane")

    @contextmanager
    def reading(self) -> Iterator[Registry]:
        """The stack's registry, opened in this process (polling it costs no CLI start)."""
        registry = Registry.open(load_settings(data_dir=self.data_dir))
        try:
            yield registry
        finally:
            registry.close()

    def kill_control_plane(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def routes(self) -> RouteTable | None:
        try:
            return RouteTable.from_json((self.data_dir / "routes.json").read_bytes())
        except (OSError, ValueError):
            return None

    def ready_backends(self, endpoint: str) -> list[str]:
        table = self.routes()
        if table is None or endpoint not in table.endpoints:
            return []
        return [url for v in table.endpoints[endpoint].variants for url in v.backends]

    def ready_replica_pids(self) -> list[int]:
        """Pids of the replicas the gateway routes to now."""
        ready = set(self.ready_backends("m"))
        found = []
        for path in (self.data_dir / "replicas").glob("*.json"):
            record = json.loads(path.read_text())
            if f"http://127.0.0.1:{record['port']}" in ready:
                found.append(int(record["pid"]))
        return found

    def replica_pids(self) -> dict[str, int]:
        found = {}
        for path in (self.data_dir / "replicas").glob("*.json"):
            record = json.loads(path.read_text())
            found[record["id"]] = record["pid"]
        return found

    def gateway_pids(self) -> list[int]:
        """Pids of the gateway processes (the serving one and its standby), running or not."""
        return gateway_pids(self.data_dir / "gateway.json")

    def down(self) -> None:
        """Stop everything this stack started: control plane, gateway, replicas."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        for pid in [*self.replica_pids().values(), *self.gateway_pids()]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until true; returns the seconds it took, or fails the test."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")


@dataclass
class Outcome:
    at_s: float
    status: int  # 0: transport error
    latency_s: float
    variant: str = ""
    version: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Load:
    """Open-loop load: ``rate`` requests per second, at most ``max_s`` seconds."""

    url: str
    rate: float = 50.0
    max_s: float = 60.0
    workers: int = 16
    body: Callable[[], bytes] = lambda: BODY
    answered: Callable[[bytes, httpx.Response], None] | None = None
    """Called with each request body and its answer (e.g. to send feedback)."""
    headers: Callable[[], dict[str, str]] = dict
    """The headers of each request (e.g. a user id for sticky routing)."""
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def running(self) -> Iterator[Load]:
        threads = [threading.Thread(target=self._worker, args=(i,)) for i in range(self.workers)]
        self._start = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=30)

    def now_s(self) -> float:
        return time.monotonic() - self._start

    def failures(self, since_s: float = 0.0, until_s: float = float("inf")) -> list[Outcome]:
        return [o for o in self.outcomes if since_s <= o.at_s < until_s and o.status != 200]

    def _worker(self, index: int) -> None:
        interval_s = self.workers / self.rate
        next_at = index * interval_s / self.workers
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and next_at < self.max_s:
                delay = next_at - self.now_s()
                if delay > 0 and self._stop.wait(delay):
                    return
                sent = self.now_s()
                body, sent_headers = self.body(), self.headers()
                try:
                    answer = client.post(self.url, content=body, headers=sent_headers)
                    status, headers = answer.status_code, answer.headers
                    if self.answered is not None:
                        self.answered(body, answer)
                except httpx.HTTPError:
                    status, headers = 0, httpx.Headers()
                variant = headers.get("ferryman-variant", "")
                version = headers.get("ferryman-model-version", "")
                self.outcomes.append(Outcome(
                    sent, status, self.now_s() - sent, variant, version,
                    tuple(sent_headers.items()),
                ))  # fmt: skip
                next_at += interval_s
