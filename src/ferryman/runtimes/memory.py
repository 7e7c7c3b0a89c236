"""The in-memory runtime: pretend replicas for tests of the control plane's decisions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ferryman.gateway.routes import RouteTable
from ferryman.runtimes.base import Fleet, Replica, ReplicaSpec, ReplicaState


@dataclass
class InMemoryRuntime:
    """A :class:`~ferryman.runtimes.base.Runtime` of pretend replicas, ready after
    ``ready_after`` observations, with knobs to make them fail or crash."""

    ready_after: int = 1
    clock_s: float = 0.0
    replicas: dict[str, Replica] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    tables: list[RouteTable] = field(default_factory=list)
    """Every table published, in order (the same table twice in a row is kept once)."""
    publishes: int = 0
    """How many times a table was handed over, changed or not."""
    _observations: dict[str, int] = field(default_factory=dict)
    _counter: int = 0
    failing_templates: set[str] = field(default_factory=set)

    def observe(self) -> list[Replica]:
        for replica_id, replica in list(self.replicas.items()):
            seen = self._observations[replica_id] = self._observations.get(replica_id, 0) + 1
            if replica.state is ReplicaState.STARTING and seen >= self.ready_after:
                failed = replica.spec.template in self.failing_templates
                state = ReplicaState.FAILED if failed else ReplicaState.READY
                self.replicas[replica_id] = replace(replica, state=state)
        return list(self.replicas.values())

    def start(self, spec: ReplicaSpec) -> Replica:
        self._counter += 1
        replica = Replica(
            id=f"r{self._counter}",
            spec=spec,
            state=ReplicaState.STARTING,
            url=f"http://127.0.0.1:{20000 + self._counter}",
            started_at_s=self.clock_s,
        )
        self.replicas[replica.id] = replica
        return replica

    def stop(self, replica_id: str) -> None:
        if self.replicas.pop(replica_id, None) is not None:
            self.stopped.append(replica_id)

    def crash(self, replica_id: str) -> None:
        """Fault injection: the replica's process died."""
        replica = self.replicas[replica_id]
        self.replicas[replica_id] = replace(replica, state=ReplicaState.FAILED, reason="exited")

    def publish(self, table: RouteTable) -> None:
        self.publishes += 1
        if not self.tables or self.tables[-1] != table:
            self.tables.append(table)

    def published(self) -> RouteTable | None:
        return self.tables[-1] if self.tables else None

    def gateway_urls(self) -> list[str]:
        return []

    def running_fleet(self) -> Fleet:
        return Fleet(len(self.replicas), False, frozenset({""} if self.replicas else ()))

    def stop_fleet(self) -> int:
        running = len(self.replicas)
        for replica_id in list(self.replicas):
            self.stop(replica_id)
        return running

    def close(self) -> None:
        pass
