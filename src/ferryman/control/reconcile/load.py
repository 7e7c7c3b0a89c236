"""The load on each variant, from the tick's :class:`~ferryman.control.metrics.source.FleetMetrics`.

In-flight requests come from each ready replica's ``ferryman_in_flight_requests`` gauge,
the request rate from the growth of its request counters between two ticks, and requests
held for lack of a replica from the gateways' ``ferryman_gateway_held_requests`` gauge. A
replica that did not answer counts as idle.
"""

from __future__ import annotations

from ferryman.control.metrics.source import FleetMetrics
from ferryman.control.reconcile.reconciler import Load
from ferryman.runtimes.base import Replica, ReplicaState
from ferryman.types import Slot


class FleetLoad:
    """A :class:`~ferryman.control.reconcile.reconciler.LoadSource` over the tick's metrics.

    The control loop hands it each tick's :class:`FleetMetrics` (``update``) before the
    reconciler asks for load; request rates are counter growth between two of them.
    """

    def __init__(self) -> None:
        self._fleet = FleetMetrics(0.0)
        self._counts: dict[str, tuple[float, float, float]] = {}
        """Per replica: (when, request count, rate then), so a second look in a tick agrees."""

    def update(self, fleet: FleetMetrics) -> None:
        self._fleet = fleet

    def load(self, slot: Slot, replicas: list[Replica]) -> Load:
        in_flight = qps = 0.0
        for replica in replicas:
            scrape = self._fleet.replicas.get(replica.url)
            if replica.state is not ReplicaState.READY or scrape is None:
                continue
            in_flight += scrape.in_flight
            qps += self._rate(replica.id, scrape.traffic.requests)
        held = self._fleet.held.get(slot[0], 0.0)
        return Load(in_flight=in_flight, qps=qps, held=int(held))

    def _rate(self, replica_id: str, count: float) -> float:
        now = self._fleet.at_s
        before = self._counts.get(replica_id)
        if before is not None and before[0] == now:
            return before[2]
        rate = 0.0
        if before is not None and now > before[0] and count >= before[1]:
            rate = (count - before[1]) / (now - before[0])
        self._counts[replica_id] = (now, count, rate)
        return rate
