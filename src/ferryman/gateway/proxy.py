"""Forward one request to a ready replica of a variant; retry only what never reached one.

A replica is chosen by fewest requests in flight (ties go round the list). A connection
that is refused never reached the replica, and one reset before any answer left the request
unread in the replica's socket (:mod:`~ferryman.gateway.pool` says how that is known), so
the replica is marked down at once and the request goes to the next live replica of the
same variant. Any other failure after the request was written is returned as it is, never
retried: the replica may have processed the request (a poison input is not sent to a second
replica). A replica that missed the per-try
deadline (frozen, overloaded) or broke the connection (crashed) is marked down too, so new
requests go to the others at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection

from ferryman.errors import BadGateway, DeadlineExceeded
from ferryman.gateway.health import BackendHealth
from ferryman.gateway.messages import Answer
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.gateway.routes import VariantRoute
from ferryman.gateway.transport import NotReached, Transport, Unread, Upstream

logger = logging.getLogger(__name__)


class NoLiveBackend(Exception):
    """Every replica of the variant is marked down or refused: the request may be held."""


class Proxy:
    """Replica choice, passive health and the connect-only retry."""

    def __init__(
        self, transport: Transport, health: BackendHealth, metrics: GatewayMetrics
    ) -> None:
        self.transport = transport
        self.health = health
        self._metrics = metrics
        self._in_flight: Counter[str] = Counter()
        self._turn = 0

    async def forward(self, endpoint: str, variant: VariantRoute, request: Upstream) -> Answer:
        """The replica's answer; raises NoLiveBackend when no replica could be reached."""
        refused: set[str] = set()
        while (backend := self._choose(variant, refused)) is not None:
            try:
                return await self._send(backend, request)
            except NotReached as exc:
                refused.add(backend)
                why = "reset before reading the request" if isinstance(exc, Unread) else "refused"
                self._mark_down(endpoint, variant, backend, why)
            except (DeadlineExceeded, BadGateway) as exc:
                self._mark_down(endpoint, variant, backend, exc.message)
                raise
        raise NoLiveBackend(variant.name)

    def _mark_down(self, endpoint: str, variant: VariantRoute, backend: str, why: str) -> None:
        self.health.mark_down(backend)
        self._metrics.backend_down.labels(endpoint, variant.name).inc()
        logger.warning("%s/%s: replica %s %s; marked down", endpoint, variant.name, backend, why)

    def has_live_backend(self, variant: VariantRoute) -> bool:
        return any(self.health.is_up(backend) for backend in variant.backends)

    def forget(self, backends: Collection[str]) -> None:
        """Drop state about replicas (a new route table arrived; ``backends`` are in it)."""
        self.health.reset()
        self.transport.retain(backends)
        self._in_flight = +self._in_flight  # keeps only replicas with requests in flight

    def _choose(self, variant: VariantRoute, refused: set[str]) -> str | None:
        live = [b for b in self.health.live(variant.backends) if b not in refused]
        if len(live) <= 1:
            return live[0] if live else None
        self._turn = (self._turn + 1) % len(live)
        rotated = live[self._turn :] + live[: self._turn]
        return min(rotated, key=self._in_flight.__getitem__)

    async def _send(self, backend: str, request: Upstream) -> Answer:
        self._in_flight[backend] += 1
        try:
            return await self.transport.send(backend, request)
        finally:
            self._in_flight[backend] -= 1
