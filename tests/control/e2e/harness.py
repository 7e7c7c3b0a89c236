"""A whole local Ferryman for end-to-end tests: ``ferryman up`` as a process, and load.

:class:`Stack` starts the control plane (which starts the gateway and the replicas) in a
temporary data dir with short loop intervals, and can kill and restart it. :class:`Load`
sends requests at a fixed arrival rate from background threads, bounded in count and time,
checks each answer's body when told how, and records every outcome so a test can count
failures in any time window; :meth:`Load.report` gives the achieved rate and p50/p90/p95/p99
counted from each request's scheduled time, and says whether a missed rate was the load
generator's doing (this machine could not send on time) or the server's (answers too slow).
"""

from __future__ import annotations

import contextlib
import json
import math
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

    def ferryman(self, *args: str, timeout_s: float = 60) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("ferryman")), *args],
            capture_output=True, text=True, env=self.env, check=False, timeout=timeout_s,
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
    """When it was sent (s since the load started)."""
    status: int  # 0: transport error
    latency_s: float
    """From its send to its answer."""
    variant: str = ""
    version: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    due_s: float = 0.0
    """When the schedule said to send it; ``at_s - due_s`` is how late it left."""
    blocked_s: float = 0.0
    """The part of that lateness its worker spent waiting for the previous answer (the
    server's doing); the rest is the generator's own (a thread that woke late)."""
    wrong: str = ""
    """Why a 200's body was wrong ("" when right or not checked)."""

    @property
    def is_failed(self) -> bool:
        """RELIABILITY's "failed": a transport error, a non-200, or a wrong body."""
        return self.status != 200 or bool(self.wrong)

    @property
    def scheduled_latency_s(self) -> float:
        """From the scheduled send to the answer (no coordinated omission)."""
        return self.at_s + self.latency_s - self.due_s


LATE_S = 0.010
"""A send more than this behind its schedule counts as late."""


@dataclass(frozen=True)
class LoadReport:
    """What a :class:`Load` achieved: counts, rates and latency percentiles."""

    target_rps: float
    sent: int
    failed: int
    sent_rps: float
    """Sends over the time they were scheduled across."""
    achieved_rps: float
    """Correct answers over the time from the first scheduled send to the last answer."""
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    late_by_client: int
    """Sends late (> LATE_S) with their worker free: the generator could not keep time."""
    late_by_server: int
    """Sends late because their worker still waited for a slower answer."""

    def rate_problem(self, share: float = 0.99) -> str:
        """Why the achieved rate is under ``share`` of the target, naming the cause ("" if
        it is not)."""
        if self.achieved_rps >= share * self.target_rps:
            return ""
        what = f"achieved {self.achieved_rps:.1f} of {self.target_rps:g} req/s (< {share:.0%})"
        if self.failed:
            return f"{what}: {self.failed} of {self.sent} requests failed"
        if self.late_by_client > self.late_by_server and self.sent_rps < share * self.target_rps:
            return (
                f"{what}: this machine could not generate the load ({self.late_by_client} "
                f"sends left > {LATE_S * 1000:.0f} ms late with their sender free, sent "
                f"{self.sent_rps:.1f} req/s); not a verdict on the server"
            )
        return (
            f"{what}: the server answered too slowly ({self.late_by_server} sends waited for "
            f"a slower answer, p99 {self.p99_ms:.0f} ms)"
        )

    def summary(self) -> str:
        return (
            f"{self.sent} sent, {self.failed} failed, {self.achieved_rps:.1f}/"
            f"{self.target_rps:g} req/s; p50 {self.p50_ms:.1f} p90 {self.p90_ms:.1f} "
            f"p95 {self.p95_ms:.1f} p99 {self.p99_ms:.1f} ms; late sends: "
            f"{self.late_by_client} the generator's, {self.late_by_server} the server's"
        )


@dataclass
class Load:
    """Fixed-arrival-rate load: ``rate`` requests per second, at most ``max_s`` seconds.

    Request ``i`` is due at ``i / rate``; ``workers`` threads take the requests in turn, so
    arrivals keep the schedule while fewer than ``workers`` answers are outstanding (80 ms
    each at 200 req/s and 16 workers). A worker still waiting when its next request is due
    sends it as soon as the answer comes: that request is late by the server's doing
    (``Outcome.blocked_s``), its latency counts from the schedule all the same, and the
    achieved rate shows it. The cap keeps what a test calls "in flight" bounded (at most
    ``workers`` requests), which the fault tests count on.
    """

    url: str
    rate: float = 50.0
    max_s: float = 60.0
    workers: int = 16
    body: Callable[[], bytes] = lambda: BODY
    answered: Callable[[bytes, httpx.Response], None] | None = None
    """Called with each request body and its answer (e.g. to send feedback)."""
    headers: Callable[[], dict[str, str]] = dict
    """The headers of each request (e.g. a user id for sticky routing)."""
    check: Callable[[bytes, httpx.Response], str] | None = None
    """For a 200: why its body is wrong for the request ("" when right); a wrong body is a
    failure."""
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
        return [o for o in self.outcomes if since_s <= o.at_s < until_s and o.is_failed]

    def report(self, since_s: float = 0.0, until_s: float = float("inf")) -> LoadReport:
        """Counts, rates and percentiles of the requests due in [since_s, until_s)."""
        window = [o for o in list(self.outcomes) if since_s <= o.due_s < until_s]
        if not window:
            raise AssertionError(f"no request was due between {since_s} and {until_s} s")
        good = [o for o in window if not o.is_failed]
        first_due = min(o.due_s for o in window)
        last_due = max(o.due_s for o in window)
        last_answer = max(o.at_s + o.latency_s for o in window)
        slot_s = 1 / self.rate
        latencies = sorted(o.scheduled_latency_s * 1000 for o in good) or [math.inf]

        def percentile(q: float) -> float:
            return latencies[min(len(latencies) - 1, math.ceil(q / 100 * len(latencies)) - 1)]

        late = [o for o in window if o.at_s - o.due_s > LATE_S]
        by_client = sum(1 for o in late if o.at_s - o.due_s - o.blocked_s > LATE_S)
        scheduled_s = last_due - first_due + slot_s
        last_send_s = max(o.at_s for o in window) - first_due + slot_s
        return LoadReport(
            target_rps=self.rate,
            sent=len(window),
            failed=len(window) - len(good),
            sent_rps=len(window) / max(scheduled_s, last_send_s),
            achieved_rps=len(good) / max(scheduled_s, last_answer - first_due),
            p50_ms=percentile(50),
            p90_ms=percentile(90),
            p95_ms=percentile(95),
            p99_ms=percentile(99),
            late_by_client=by_client,
            late_by_server=len(late) - by_client,
        )

    def _worker(self, index: int) -> None:
        interval_s = self.workers / self.rate
        next_at = index * interval_s / self.workers
        free_at = 0.0  # when this worker's previous answer came
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and next_at < self.max_s:
                delay = next_at - self.now_s()
                if delay > 0 and self._stop.wait(delay):
                    return
                sent = self.now_s()
                body, sent_headers = self.body(), self.headers()
                wrong = ""
                try:
                    answer = client.post(self.url, content=body, headers=sent_headers)
                    status, headers = answer.status_code, answer.headers
                    if self.check is not None and status == 200:
                        wrong = self.check(body, answer)
                    if self.answered is not None:
                        self.answered(body, answer)
                except httpx.HTTPError:
                    status, headers = 0, httpx.Headers()
                variant = headers.get("ferryman-variant", "")
                version = headers.get("ferryman-model-version", "")
                ended = self.now_s()
                self.outcomes.append(Outcome(
                    sent, status, ended - sent, variant, version, tuple(sent_headers.items()),
                    due_s=next_at, blocked_s=max(0.0, min(free_at, sent) - next_at), wrong=wrong,
                ))  # fmt: skip
                free_at = ended
                next_at += interval_s


def relu_answers(seeds: dict[str, float]) -> Callable[[bytes, httpx.Response], str]:
    """A :attr:`Load.check` for the test models (``make_onnx``: y = relu(x + seed)): the
    answer names one of ``seeds``' versions and holds that version's output for the request's
    own input."""

    def check(body: bytes, answer: httpx.Response) -> str:
        version = answer.headers.get("ferryman-model-version", "")
        if version not in seeds:
            return f"version {version!r} is none of {sorted(seeds)}"
        sent = json.loads(body)["inputs"][0]["data"]
        want = [max(0.0, x + seeds[version]) for x in sent]
        try:
            got = json.loads(answer.content)["outputs"][0]["data"]
        except (ValueError, KeyError, IndexError, TypeError):
            return f"not a V2 answer: {answer.content[:200]!r}"
        if len(got) != len(want) or any(abs(g - w) > 1e-5 for g, w in zip(got, want, strict=True)):
            return f"v{version} answered {got} for {sent}, not {want}"
        return ""

    return check
