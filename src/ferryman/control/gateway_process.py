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
from pathlib import Path

from ferryman.config import Settings
from ferryman.control.local import process_start

logger = logging.getLogger(__name__)


class GatewayProcess:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._state = settings.data_dir / "gateway.json"
        self._child: subprocess.Popen[bytes] | None = None

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
        settings = self._settings
        log = (settings.data_dir / "gateway.log").open("ab")
        with log:
            self._child = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "ferryman", "--data-dir", str(settings.data_dir.absolute()),
                 "gateway", "--port", str(settings.gateway.port),
                 "--routes-file", str(settings.routes_path.absolute())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        pid = self._child.pid
        self._state.write_text(json.dumps({"pid": pid, "start": process_start(pid)}))
        logger.info("started the gateway (pid %d) on %s", pid, self.url)
        return True

    def stop(self) -> None:
        pid = self._running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        if self._child is not None:
            self._child.wait(timeout=30)
        self._state.unlink(missing_ok=True)

    def _running_pid(self) -> int | None:
        try:
            recorded = json.loads(Path(self._state).read_text())
        except (OSError, ValueError):
            return None
        pid = int(recorded.get("pid", 0))
        return pid if pid and process_start(pid) == recorded.get("start") else None
