"""The gateway as a process the control plane keeps running, and re-adopts after a restart.

Like replicas it runs in a session of its own, so killing the control plane leaves the
gateway serving; its pid and process start time are kept in ``<data_dir>/gateway.json``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ferryman.config import Settings
from ferryman.connection_limits import port_is_free
from ferryman.runtimes.local.children import child_environment, process_start
from ferryman.types import Clock

logger = logging.getLogger(__name__)


class GatewayProcess:
    def __init__(
        self,
        settings: Settings,
        clock: Clock = time.monotonic,
        restart_delay_s: float = 10.0,
        registry_id: str = "",
    ) -> None:
        self._settings = settings
        self._registry_id = registry_id
        self._state = settings.data_dir / "gateway.json"
        self._child: subprocess.Popen[bytes] | None = None
        self._clock = clock
        self._restart_delay_s = restart_delay_s
        self._last_start_s: float | None = None

    @property
    def url(self) -> str:
        gateway = self._settings.gateway
        return f"http://{gateway.host}:{gateway.port}"

    def ensure_running(self) -> bool:
        """Start the gateway unless the recorded one still runs; True if it was started."""
        if self._child is not None and self._child.poll() is not None:
            logger.warning("the gateway exited with code %s; restarting it", self._child.returncode)
            self._child = None
        if self._running_pid() is not None:
            return False
        now = self._clock()
        if self._last_start_s is not None and now - self._last_start_s < self._restart_delay_s:
            return False  # it just failed: do not spin; the reason is in gateway.log
        self._last_start_s = now
        if not port_is_free(self._settings.gateway.host, self._settings.gateway.port):
            logger.error(
                "gateway port %d is taken by another process; set gateway.port "
                "(FERRYMAN_GATEWAY__PORT) or stop that process",
                self._settings.gateway.port,
            )
            return False
        settings = self._settings
        log = (settings.data_dir / "gateway.log").open("ab")
        with log:
            self._child = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "ferryman", "--data-dir", str(settings.data_dir.absolute()),
                 "gateway", "--port", str(settings.gateway.port),
                 "--routes-file", str(settings.routes_path.absolute())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=child_environment(settings, GATEWAY_SETTINGS),
            )  # fmt: skip
        pid = self._child.pid
        record = {"pid": pid, "start": process_start(pid), "registry": self._registry_id}
        self._state.write_text(json.dumps(record))
        logger.info("started the gateway (pid %d) on %s", pid, self.url)
        return True

    def stop(self) -> None:
        pid = self._running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        if self._child is not None:
            self._child.wait(timeout=30)
        self._state.unlink(missing_ok=True)

    def is_running(self) -> bool:
        return self._running_pid() is not None

    def _running_pid(self) -> int | None:
        try:
            recorded = json.loads(Path(self._state).read_text())
        except (OSError, ValueError):
            return None
        pid = int(recorded.get("pid", 0))
        return pid if pid and process_start(pid) == recorded.get("start") else None


GATEWAY_SETTINGS = ("FERRYMAN_GATEWAY__", "FERRYMAN_CONNECTIONS__", "FERRYMAN_CONFIG")
"""The Ferryman settings a gateway reads from its environment; it is given no others (not
the database URL, not the MLflow secret)."""


def gateway_registry(state: Path) -> str | None:
    """The registry of the gateway recorded in ``state`` if it runs ('' if not recorded)."""
    try:
        recorded = json.loads(state.read_text())
        pid = int(recorded.get("pid", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if not pid or process_start(pid) != recorded.get("start"):
        return None
    return str(recorded.get("registry", ""))
