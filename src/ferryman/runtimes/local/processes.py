"""Replicas as processes on this machine (the replica half of the ``local`` runtime).

Each replica is ``python -m ferryman serve MODEL:VERSION`` in a session of its own (so a
control plane killed with SIGKILL leaves the data plane serving), on a free loopback port.
A state file per replica under ``<data_dir>/replicas/`` records its pid, the kernel's start
time of that pid and its spec; a restarted control plane re-adopts the processes whose pid
and start time still match, and forgets the rest, so there are neither orphans nor
duplicates. Stopping is non-blocking: SIGTERM (the replica drains), then SIGKILL once the
drain timeout has passed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from ferryman.config import Settings
from ferryman.runtimes.base import Replica, ReplicaSpec, ReplicaState, lasting_failure
from ferryman.runtimes.local.children import child_environment, free_port, process_start
from ferryman.runtimes.local.usage import process_usage
from ferryman.types import Clock

logger = logging.getLogger(__name__)

STATE_DIR = "replicas"


@dataclass(frozen=True)
class ProcessRecord:
    """What the state file of one replica holds."""

    id: str
    pid: int
    port: int
    started_at_s: float
    process_start: str
    spec: dict[str, object]
    stopping_since_s: float | None = None
    registry: str = ""
    """Identity of the registry whose control plane started it ('' if recorded before)."""


class ReplicaProcesses:
    """Start, observe, drain and re-adopt replica processes through their state files."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = time.monotonic,
        startup_timeout_s: float = 120.0,
        registry_id: str = "",
        fleet_secret: str | None = None,
    ) -> None:
        # Start and stop times in the state files are on the monotonic clock: on Linux it is
        # one clock for every process of a boot, so they survive a control-plane restart,
        # and a wall clock that jumps or races (NTP, a resumed VM) can neither fail a replica
        # that is still loading nor keep a stuck one (RELIABILITY F9).
        self._settings = settings
        self._dir = settings.data_dir / STATE_DIR
        self._dir.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._startup_timeout_s = startup_timeout_s
        self._registry_id = registry_id
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._fleet_secret = fleet_secret
        headers = {"authorization": f"Bearer {fleet_secret}"} if fleet_secret else None
        self._http = httpx.Client(timeout=1.0, headers=headers)

    def observe(self) -> list[Replica]:
        replicas = []
        for record in self._records():
            exit_reason = self._exit_reason(record)
            if record.stopping_since_s is not None:
                self._finish_stopping(record, exit_reason is not None)
            elif exit_reason is not None:
                replicas.append(self._replica(record, ReplicaState.FAILED, exit_reason))
            else:
                replicas.append(self._probe(record))
        return replicas

    def start(self, spec: ReplicaSpec) -> Replica:
        replica_id = f"{spec.endpoint}-{spec.variant}-{uuid.uuid4().hex[:8]}"
        port = free_port()
        log = (self._dir / f"{replica_id}.log").open("ab")
        with log:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
                self._command(spec, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(spec),
                start_new_session=True,
            )
        self._children[child.pid] = child
        record = ProcessRecord(
            id=replica_id,
            pid=child.pid,
            port=port,
            started_at_s=self._clock(),
            process_start=process_start(child.pid) or "",
            spec=asdict(spec),
            registry=self._registry_id,
        )
        self._write(record)
        logger.info("started replica %s (pid %d, port %d)", replica_id, child.pid, port)
        return self._replica(record, ReplicaState.STARTING)

    def stop(self, replica_id: str) -> None:
        path = self._dir / f"{replica_id}.json"
        record = self._read(path)
        if record is None or record.stopping_since_s is not None:
            return
        self._signal(record, signal.SIGTERM)
        self._write(ProcessRecord(**{**asdict(record), "stopping_since_s": self._clock()}))

    def stop_all(self, timeout_s: float = 30.0) -> int:
        """Drain and stop every replica this data dir knows; how many were running."""
        records = [r for r in self._records() if self._exit_reason(r) is None]
        for record in records:
            self.stop(record.id)
        deadline = time.monotonic() + timeout_s
        while self._records() and time.monotonic() < deadline:
            self.observe()  # reaps the ones that have exited, kills laggards past the drain
            time.sleep(0.1)
        return len(records)

    def close(self) -> None:
        self._http.close()

    def registries(self) -> dict[str, int]:
        """How many running replicas each registry identity started ('' for older records)."""
        found: dict[str, int] = {}
        for record in self._records():
            if self._exit_reason(record) is None:
                found[record.registry] = found.get(record.registry, 0) + 1
        return found

    def _command(self, spec: ReplicaSpec, port: int) -> list[str]:
        settings = self._settings
        command = [
            sys.executable, "-m", "ferryman",
            "--data-dir", str(settings.data_dir.absolute()),
            "serve", f"{spec.model}:{spec.version}", "--port", str(port), "--host", "127.0.0.1",
        ]  # fmt: skip
        return command + (["--variant", spec.kind] if spec.kind else [])

    def _environment(self, spec: ReplicaSpec) -> dict[str, str]:
        # The database URL goes in the environment, not on the command line: it may hold a
        # password, and every user of the machine can read a process's arguments (ps).
        env = child_environment(self._settings)
        env["FERRYMAN_DATABASE_URL"] = self._settings.resolved_database_url
        env["FERRYMAN_REGISTRY_ID"] = self._registry_id
        if self._fleet_secret is not None:  # the replica's token: see ferryman.fleet_secret
            env["FERRYMAN_SERVING__TOKEN"] = self._fleet_secret
        return {**env, **spec.serving_environment()}

    def _probe(self, record: ProcessRecord) -> Replica:
        url = f"http://127.0.0.1:{record.port}"
        try:
            answer = self._http.get(f"{url}/v2/health/ready")
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            return self._replica(record, ReplicaState.READY)
        failure = lasting_failure(answer)
        if failure is not None:  # it loaded and then failed its load or warm-up: final
            return self._replica(record, ReplicaState.FAILED, failure)
        age_s = self._clock() - record.started_at_s
        if age_s > self._startup_timeout_s:
            reason = f"not ready after {age_s:.0f} s (see {record.id}.log)"
            return self._replica(record, ReplicaState.FAILED, reason)
        return self._replica(record, ReplicaState.STARTING)

    def _finish_stopping(self, record: ProcessRecord, has_exited: bool) -> None:
        drain_s = self._settings.serving.drain_timeout_s + 5
        since = record.stopping_since_s or 0.0
        if not has_exited and self._clock() - since > drain_s:
            logger.warning("replica %s did not drain in %.0f s; killing it", record.id, drain_s)
            self._signal(record, signal.SIGKILL)
            has_exited = True
        if has_exited:
            self._forget(record)

    def _exit_reason(self, record: ProcessRecord) -> str | None:
        """None while the recorded process runs; else why it is gone."""
        child = self._children.get(record.pid)
        if child is not None and (code := child.poll()) is not None:
            return f"exited with code {code} (see {record.id}.log)"
        if process_start(record.pid) != record.process_start:
            return "its process is gone"
        return None

    def _signal(self, record: ProcessRecord, which: signal.Signals) -> None:
        if self._exit_reason(record) is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, which)

    def _forget(self, record: ProcessRecord) -> None:
        child = self._children.pop(record.pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1)
        (self._dir / f"{record.id}.json").unlink(missing_ok=True)

    def _replica(self, record: ProcessRecord, state: ReplicaState, reason: str = "") -> Replica:
        spec = ReplicaSpec(**record.spec)  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{record.port}"
        usage = None if state is ReplicaState.FAILED else process_usage(record.pid)
        return Replica(
            record.id, spec, state, url, record.started_at_s, reason,
            cpu_s=usage.cpu_s if usage else None, rss_bytes=usage.rss_bytes if usage else None,
        )  # fmt: skip

    def _records(self) -> list[ProcessRecord]:
        found = (self._read(path) for path in sorted(self._dir.glob("*.json")))
        return [record for record in found if record is not None]

    def _read(self, path: Path) -> ProcessRecord | None:
        try:
            return ProcessRecord(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            logger.warning("ignoring unreadable replica state file %s", path.name)
            return None

    def _write(self, record: ProcessRecord) -> None:
        path = self._dir / f"{record.id}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(record)))
        os.replace(temporary, path)
