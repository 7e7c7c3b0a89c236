"""The route table file: read at start, then re-read whenever it changes.

The control plane writes the file atomically (temp file + rename), so a changed inode,
size or mtime means a whole new table. A file that cannot be read or does not validate is
logged and counted; the last good table stays in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from ferryman.gateway.metrics import GatewayMetrics
from ferryman.gateway.routes import RouteTable

logger = logging.getLogger(__name__)

Stamp = tuple[int, int, int]
MAX_ROUTE_FILE_BYTES = 16 * 1024 * 1024


class RouteFile:
    """Polls one route file and hands each new valid table to ``apply``."""

    def __init__(
        self,
        path: Path,
        apply: Callable[[RouteTable], None],
        metrics: GatewayMetrics,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.path = path
        self._apply = apply
        self._metrics = metrics
        self._allowed_hosts = allowed_hosts
        self._stamp: Stamp | None = None

    def check(self) -> bool:
        """Load the file if it changed since the last check; True if a table was applied."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._refuse(f"cannot stat it: {exc.strerror}")
            return False
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        table = self._read(info.st_size)
        if table is None:
            return False
        self._apply(table)
        return True

    def _read(self, size: int) -> RouteTable | None:
        reason: str
        if size > MAX_ROUTE_FILE_BYTES:
            reason = f"it has {size} bytes, over {MAX_ROUTE_FILE_BYTES}"
        else:
            try:
                return RouteTable.from_json(self.path.read_bytes(), self._allowed_hosts)
            except OSError as exc:
                reason = f"cannot read it: {exc.strerror}"
            except ValidationError as exc:
                reason = f"it is not a valid route table: {exc}"
        self._refuse(reason)
        return None

    async def watch(self, interval_s: float) -> None:
        """Check the file every ``interval_s`` until cancelled (a task the app owns)."""
        while True:
            self.check()
            await asyncio.sleep(interval_s)

    def _refuse(self, reason: str) -> None:
        self._metrics.route_reload_errors.inc()
        logger.warning("route file %s ignored, the last good table stays: %s", self.path, reason)
