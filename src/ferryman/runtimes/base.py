"""Where replicas run, behind one seam: everything placement-specific is behind it.

``Runtime.observe()`` says what exists (state, URL, node, CPU and memory of each replica),
``start(spec)`` adds a replica, ``stop(id)`` drains and removes one, and
``publish(table)`` makes the gateways hold a route table. The reconciler decides; the
runtime only does. :class:`~ferryman.runtimes.local.LocalRuntime` runs processes on this
machine; :class:`~ferryman.runtimes.memory.InMemoryRuntime` is the stand-in for tests of
the decisions. Nothing outside a runtime knows about pids, ``/proc`` or route-table files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import httpx

from ferryman.gateway.routes import RouteTable
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

    def serving_environment(self) -> dict[str, str]:
        """The replica's batching and thread settings as its environment sets them."""
        overrides = {
            "MAX_BATCH_SIZE": self.max_batch_size,
            "MAX_DELAY_MS": self.max_delay_ms,
            "INTRA_OP_THREADS": self.intra_op_threads,
        }
        return {f"FERRYMAN_SERVING__{k}": str(v) for k, v in overrides.items() if v is not None}

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
    node: str = "local"
    """Where it runs, in the runtime's words (a host, a Ray node id)."""
    cpu_s: float | None = None
    """CPU time it has used since it started, in seconds; None when unknown."""
    rss_bytes: float | None = None
    """Resident memory now, in bytes; None when unknown."""


@dataclass(frozen=True)
class Fleet:
    """What runs now, and the registries its parts say they belong to."""

    replicas: int
    has_gateway: bool
    registries: frozenset[str]
    """Identities recorded by the running parts and the route table ('' where unrecorded)."""

    @property
    def is_running(self) -> bool:
        return self.replicas > 0 or self.has_gateway


class Runtime(Protocol):
    def observe(self) -> list[Replica]:
        """Every replica this runtime started and has not stopped, with its state now."""
        ...

    def start(self, spec: ReplicaSpec) -> Replica: ...

    def stop(self, replica_id: str) -> None:
        """Drain in-flight requests, then stop; idempotent."""
        ...

    def publish(self, table: RouteTable) -> None:
        """Make every gateway hold ``table`` (and keep the gateways running); called each
        tick, so a table a gateway lost is handed to it again."""
        ...

    def published(self) -> RouteTable | None:
        """The table the gateways were last handed, as it survives a control-plane restart."""
        ...

    def gateway_urls(self) -> list[str]:
        """Where the gateways answer, for scraping their traffic."""
        ...

    def running_fleet(self) -> Fleet:
        """What of the fleet runs, and whose registry it says it is (signals nothing)."""
        ...

    def stop_fleet(self) -> int:
        """Drain and stop every replica and gateway of this fleet; how many replicas ran."""
        ...

    def close(self) -> None:
        """Release what the runtime holds in this process; the fleet keeps serving."""
        ...


def lasting_failure(answer: httpx.Response | None) -> str | None:
    """The reason a replica will never be ready (failed load or warm-up), if it says so.

    A replica answers 503 with ``{"error": "… is not ready: <reason>"}``; "the model is
    loading" is the one reason that passes by itself.
    """
    if answer is None or answer.status_code != 503:
        return None
    try:
        message = str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return None
    if "is loading" in message or "draining" in message:
        return None
    return message[:500]
