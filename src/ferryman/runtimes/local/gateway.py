"""The gateway as processes the control plane keeps running, and re-adopts after a restart.

Two gateway processes share the port: the oldest serves, the other is a warm standby that
serves the moment the first dies (:mod:`ferryman.gateway.takeover`), so a crash
costs only the requests in flight. Each pass of the loop the port gets a health request
with a deadline; its answer names the serving process. A gateway that accepts the
connection but misses the deadline twice in a row is hung (stopped, deadlocked) and is
killed, so its standby serves. A missing process is started again at once; only a crash
loop (more than ``MAX_STARTS`` starts in ``restart_window_s``) waits, and then a standby,
not the serving gateway, is what is missing. Like replicas the gateways run in sessions of
their own, so killing the control plane leaves them serving; their pids and process start
times are kept in ``<data_dir>/gateway.json``.
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
from pathlib import Path
from typing import Any

import httpx

from ferryman.config import Settings
from ferryman.connection_limits import port_is_free
from ferryman.runtimes.local.children import child_environment, process_start
from ferryman.types import Clock

logger = logging.getLogger(__name__)

GATEWAYS = 2
"""The serving gateway and its warm standby."""
MAX_STARTS = 6
"""Starts allowed in one ``restart_window_s`` before the next waits (a crash loop)."""
MISSED_PROBES = 2
"""Health requests in a row the serving gateway may miss before it is killed as hung."""

Process = tuple[int, str]  # pid, process start time


class GatewayProcess:
    def __init__(
        self,
        settings: Settings,
        clock: Clock = time.monotonic,
        restart_window_s: float = 10.0,
        registry_id: str = "",
        fleet_secret: str | None = None,
    ) -> None:
        self._settings = settings
        self._fleet_secret = fleet_secret
        self._state = settings.data_dir / "gateway.json"
        self._serving: int | None = None
        self._registry_id = registry_id
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._clock = clock
        self._restart_window_s = restart_window_s
        self._starts: list[float] = []
        self._missed = 0
        self._probe_timeout_s = settings.control.gateway_probe_timeout_s
        self._http = httpx.Client()
        self.health: dict[str, Any] | None = None
        """The serving gateway's last health answer (None: it did not answer the last probe)."""

    @property
    def url(self) -> str:
        gateway = self._settings.gateway
        return f"http://{gateway.host}:{gateway.port}"

    @property
    def generation(self) -> int | None:
        """The route table generation the serving gateway held at the last probe."""
        value = (self.health or {}).get("generation")
        return value if isinstance(value, int) else None

    def ensure_running(self) -> bool:
        """Probe the serving gateway, kill it if hung, and start what is missing of the two;
        True if one was started."""
        self._reap()
        running = self._running()
        if running is None:  # a gateway of an older release: it serves alone, left be
            return False
        self._check_liveness(running)
        running = self._running() or []
        started = False
        while len(running) < GATEWAYS and self._may_start(running):
            running.append(self._start())
            started = True
        self._write(running)
        return started

    def stop(self) -> None:
        """SIGTERM every gateway (standbys first, so none takes over), and wait for them."""
        running = self._running() or self._legacy()
        for pid, _ in sorted(running, key=lambda process: process[0] == self._serving):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for child in self._children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=30)
        self._state.unlink(missing_ok=True)
        self._http.close()

    def is_running(self) -> bool:
        return bool(self._running() or self._legacy())

    def pids(self) -> list[int]:
        """The pids of the running gateway processes."""
        return [pid for pid, _ in self._running() or self._legacy()]

    def _check_liveness(self, running: list[Process]) -> None:
        is_hung = False
        try:
            answer = self._http.get(f"{self.url}/-/healthz", timeout=self._probe_timeout_s)
            self.health = answer.json() if answer.status_code == 200 else None
        except httpx.TimeoutException:  # connected (or queued) but no answer in time
            self.health, is_hung = None, True
        except (httpx.HTTPError, ValueError):  # refused: nobody listens yet, nothing hung
            self.health = None
        if self.health is not None:
            self._missed = 0
            pid = self.health.get("pid")
            self._serving = pid if isinstance(pid, int) else None
            return
        self._missed = self._missed + 1 if is_hung and running else 0
        if self._missed < MISSED_PROBES:
            return
        self._missed = 0
        pids = [pid for pid, _ in running]
        serving = self._serving if self._serving in pids else pids[0]  # else the oldest
        logger.warning(
            "the gateway (pid %d) missed %d health requests of %.1f s; killing it, its "
            "standby serves",
            serving, MISSED_PROBES, self._probe_timeout_s,
        )  # fmt: skip
        with contextlib.suppress(ProcessLookupError):
            os.kill(serving, signal.SIGKILL)
        self._wait_gone(serving)
        self._serving = None

    def _may_start(self, running: list[Process]) -> bool:
        now = self._clock()
        self._starts = [at for at in self._starts if now - at < self._restart_window_s]
        if len(self._starts) >= MAX_STARTS:
            return False  # a crash loop: the reason is in gateway.log
        if running:
            return True
        settings = self._settings.gateway
        if not port_is_free(settings.host, settings.port):
            self._starts.append(now)  # counts, so a taken port is logged once a window
            logger.error(
                "gateway port %d is taken by another process; set gateway.port "
                "(FERRYMAN_GATEWAY__PORT) or stop that process",
                settings.port,
            )
            return False
        return True

    def _start(self) -> Process:
        self._starts.append(self._clock())
        settings = self._settings
        log = (settings.data_dir / "gateway.log").open("ab")
        with log:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "ferryman", "--data-dir", str(settings.data_dir.absolute()),
                 "gateway", "--port", str(settings.gateway.port),
                 "--routes-file", str(settings.routes_path.absolute()), "--shared-port"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=self._environment(),
            )  # fmt: skip
        self._children[child.pid] = child
        logger.info("started a gateway (pid %d) for %s", child.pid, self.url)
        return (child.pid, process_start(child.pid) or "")

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            if (code := child.poll()) is not None:
                del self._children[pid]
                logger.warning("a gateway (pid %d) exited with code %s", pid, code)

    def _environment(self) -> dict[str, str]:
        env = child_environment(self._settings, GATEWAY_SETTINGS)
        if self._fleet_secret is not None:  # what it shows replicas: see ferryman.fleet_secret
            env["FERRYMAN_GATEWAY__REPLICA_TOKEN"] = self._fleet_secret
        return env

    def _wait_gone(self, pid: int, timeout_s: float = 2.0) -> None:
        deadline = time.monotonic() + timeout_s
        while process_start(pid) is not None and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.01)

    def _recorded(self) -> dict[str, Any]:
        try:
            recorded = json.loads(self._state.read_text())
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def _running(self) -> list[Process] | None:
        """The recorded gateways still running; None if an older release's gateway runs."""
        recorded = self._recorded()
        if "processes" not in recorded and self._legacy():
            return None
        found = []
        for entry in recorded.get("processes", []):
            with contextlib.suppress(TypeError, ValueError, KeyError):
                pid, start = int(entry["pid"]), str(entry["start"])
                if process_start(pid) == start:
                    found.append((pid, start))
        return found

    def _legacy(self) -> list[Process]:
        """A gateway recorded by an older release (one process, no lock), if it runs."""
        recorded = self._recorded()
        if "processes" in recorded:
            return []
        with contextlib.suppress(TypeError, ValueError):
            pid = int(recorded.get("pid", 0))
            if pid and process_start(pid) == recorded.get("start"):
                return [(pid, str(recorded["start"]))]
        return []

    def _write(self, running: list[Process]) -> None:
        record: dict[str, Any] = {
            "registry": self._registry_id,
            "processes": [{"pid": pid, "start": start} for pid, start in running],
        }
        if running:  # where an older reader looks for "the" gateway
            record["pid"], record["start"] = running[0]
        temporary = self._state.with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, self._state)


def gateway_pids(state: Path) -> list[int]:
    """Every gateway pid a ``gateway.json`` records (running or not)."""
    try:
        recorded = json.loads(state.read_text())
        entries = recorded.get("processes", [recorded] if "pid" in recorded else [])
        return [int(entry["pid"]) for entry in entries]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


GATEWAY_SETTINGS = ("FERRYMAN_GATEWAY__", "FERRYMAN_CONNECTIONS__", "FERRYMAN_CONFIG")
"""The Ferryman settings a gateway reads from its environment; it is given no others (not
the database URL, not the MLflow secret)."""


def gateway_registry(state: Path) -> str | None:
    """The registry of the gateways recorded in ``state`` if one runs ('' if not recorded)."""
    try:
        recorded = json.loads(state.read_text())
        entries = recorded.get("processes", [recorded])
        is_running = any(process_start(int(e["pid"])) == e.get("start") for e in entries)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return str(recorded.get("registry", "")) if is_running else None
