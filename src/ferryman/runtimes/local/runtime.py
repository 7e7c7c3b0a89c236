"""The ``local`` runtime: replica processes, a gateway process and a route-table file.

Everything the control plane needs from "this machine" is here: replicas are processes
(:mod:`.processes`), the gateway is a process kept running (:mod:`.gateway`), usage comes
from ``/proc`` (:mod:`.usage`), and the route table reaches the gateway as a file that the
gateway re-reads when it changes. ``publish`` runs every tick: a table that was deleted or
garbled on disk is written again, and a gateway that died is started again.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ferryman.config import Settings
from ferryman.gateway.routes import RouteTable
from ferryman.runtimes.base import Fleet, Replica, ReplicaSpec
from ferryman.runtimes.local.gateway import GatewayProcess, gateway_registry
from ferryman.runtimes.local.processes import ReplicaProcesses
from ferryman.types import Clock

logger = logging.getLogger(__name__)


class LocalRuntime:
    """A :class:`~ferryman.runtimes.base.Runtime` of processes on this machine."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = time.monotonic,
        registry_id: str = "",
        gateway: GatewayProcess | None = None,
        fleet_secret: str | None = None,
    ) -> None:
        """``registry_id``: the registry whose control plane this is; every replica, the
        gateway and their state files carry it. ``gateway`` supervises the gateway processes
        (tests hand in a stand-in)."""
        timeout_s = settings.control.replica_startup_timeout_s
        self._replicas = ReplicaProcesses(
            settings,
            clock,
            startup_timeout_s=timeout_s,
            registry_id=registry_id,
            fleet_secret=fleet_secret,
        )
        self._gateway = gateway or GatewayProcess(
            settings, registry_id=registry_id, fleet_secret=fleet_secret
        )
        self._routes_path = settings.routes_path
        self._gateway_state = settings.data_dir / "gateway.json"
        self._clock = clock
        self._grace_s = settings.control.route_grace_s
        self._unheld_since_s: float | None = None
        """Since when the serving gateway has held another table than the file's."""

    def observe(self) -> list[Replica]:
        return self._replicas.observe()

    def start(self, spec: ReplicaSpec) -> Replica:
        return self._replicas.start(spec)

    def stop(self, replica_id: str) -> None:
        self._replicas.stop(replica_id)

    def publish(self, table: RouteTable) -> None:
        """Write the file when it is not ``table`` (deleted, garbled, replaced), and again
        when the serving gateway has held another generation for longer than the route
        grace (a new inode makes it read the file); keep the gateways running."""
        text = table.model_dump_json(indent=1).encode()
        if _read_bytes(self._routes_path) != text or self._is_unheld(table):
            temporary = self._routes_path.with_suffix(".tmp")
            temporary.unlink(missing_ok=True)
            # 0600: it carries the digests of inference tokens (useless to a thief, but private)
            with os.fdopen(
                os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"
            ) as f:
                f.write(text)
            os.replace(temporary, self._routes_path)
            self._unheld_since_s = None
        self._gateway.ensure_running()

    def _is_unheld(self, table: RouteTable) -> bool:
        held = self._gateway.generation
        if held is None or held == table.generation:
            self._unheld_since_s = None
            return False
        now = self._clock()
        if self._unheld_since_s is None:
            self._unheld_since_s = now
        if now - self._unheld_since_s < self._grace_s:
            return False
        logger.warning(
            "the gateway holds route table generation %d, not %d; writing it again",
            held,
            table.generation,
        )
        return True

    def published(self) -> RouteTable | None:
        try:
            return RouteTable.from_json(self._routes_path.read_bytes())
        except (OSError, ValueError):
            return None

    def gateway_urls(self) -> list[str]:
        return [self._gateway.url]

    def running_fleet(self) -> Fleet:
        by_registry = self._replicas.registries()
        registries = set(by_registry)
        gateway = gateway_registry(self._gateway_state)
        if gateway is not None:
            registries.add(gateway)
        table = self.published()
        if table is not None:
            registries.add(table.registry)
        return Fleet(sum(by_registry.values()), gateway is not None, frozenset(registries))

    def stop_fleet(self) -> int:
        stopped = self._replicas.stop_all()
        self._gateway.stop()
        return stopped

    def close(self) -> None:
        self._replicas.close()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
