"""Where replicas run, behind one three-method seam.

``Runtime.observe()`` says what exists, ``start(spec)`` adds a replica, ``stop(id)`` drains
and removes one. The reconciler decides; the runtime only does. :class:`LocalRuntime`
(``control/local.py``) runs processes on this machine; :class:`InMemoryRuntime` here is the
stand-in for tests of the decisions, with knobs to make replicas slow, failing or gone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from ferryman.registry import DeploymentSpec, VariantSpec


class ReplicaState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ReplicaSpec:
    """What one replica serves. Its ``template`` changes when a restart is needed."""

    endpoint: str
    variant: str
    model: str
    version: int
    kind: str | None = None
    max_batch_size: int | None = None
    max_delay_ms: float | None = None
    intra_op_threads: int | None = None

    @property
    def slot(self) -> tuple[str, str]:
        return (self.endpoint, self.variant)

    @property
    def template(self) -> str:
        """A short hash of everything that shapes the process; replicas of an old one roll."""
        text = repr((self.model, self.version, self.kind, self.max_batch_size,
                     self.max_delay_ms, self.intra_op_threads))  # fmt: skip
        return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def replica_specs(deployment: DeploymentSpec) -> list[ReplicaSpec]:
    """The replica template of every variant of a deployment."""
    return [_spec(deployment, variant) for variant in deployment.variants]


def _spec(deployment: DeploymentSpec, variant: VariantSpec) -> ReplicaSpec:
    return ReplicaSpec(
        endpoint=deployment.endpoint,
        variant=variant.name,
        model=variant.model,
        version=variant.version,
        kind=variant.kind,
        max_batch_size=deployment.max_batch_size,
        max_delay_ms=deployment.max_delay_ms,
        intra_op_threads=deployment.intra_op_threads,
    )


@dataclass(frozen=True)
class Replica:
    id: str
    spec: ReplicaSpec
    state: ReplicaState
    url: str
    started_at_s: float
    reason: str = ""


class Runtime(Protocol):
    def observe(self) -> list[Replica]:
        """Every replica this runtime started and has not stopped, with its state now."""
        ...

    def start(self, spec: ReplicaSpec) -> Replica: ...

    def stop(self, replica_id: str) -> None:
        """Drain in-flight requests, then stop; idempotent."""
        ...


@dataclass
class InMemoryRuntime:
    """A :class:`Runtime` of pretend replicas: ready after ``ready_after`` observations."""

    ready_after: int = 1
    clock_s: float = 0.0
    replicas: dict[str, Replica] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
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
