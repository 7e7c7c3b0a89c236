"""Scale from zero: requests wait, bounded in count and time, until a replica is ready.

A held request wakes when a new route table arrives (:meth:`Holding.notify`) or after a
short recheck (a replica marked down may be back); the app then routes it again. More than
``max_held`` waiting for one endpoint, or none ready within ``hold_timeout_s``, gets 503
with Retry-After. The held count per endpoint is the autoscaler's demand signal.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from ferryman.errors import Unavailable
from ferryman.gateway.messages import Message
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.gateway.routes import EndpointRoute
from ferryman.types import Clock

RECHECK_S = 0.1
RETRY_AFTER_S = 1
FIRST = asyncio.FIRST_COMPLETED


class Holding:
    """Held requests per endpoint and the signal that wakes them."""

    def __init__(self, metrics: GatewayMetrics, clock: Clock) -> None:
        self._metrics = metrics
        self._clock = clock
        self._held: Counter[str] = Counter()
        self._changed = asyncio.Event()

    def held(self) -> dict[str, int]:
        """Requests held now, by endpoint (only endpoints with some)."""
        return {endpoint: count for endpoint, count in self._held.items() if count > 0}

    def notify(self) -> None:
        """Wake every held request: the route table changed."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(
        self, route: EndpointRoute, deadline: float, gone: asyncio.Future[Message]
    ) -> None:
        """Wait for a change, up to ``deadline`` (monotonic); 503 when full or too late.

        ``gone`` resolves when the client disconnects: its slot is freed at once (a request
        nobody waits for is no demand).
        """
        endpoint = route.endpoint
        remaining_s = deadline - self._clock()
        if remaining_s <= 0:
            raise Unavailable(
                f"endpoint {endpoint!r} has no ready replica after waiting "
                f"{route.hold_timeout_s:g} s (its hold_timeout_s); try again shortly",
                retry_after_s=RETRY_AFTER_S,
            )
        if self._held[endpoint] >= route.max_held:
            raise Unavailable(
                f"endpoint {endpoint!r} has no ready replica and already holds "
                f"{route.max_held} requests (its max_held); try again shortly",
                retry_after_s=RETRY_AFTER_S,
            )
        self._held[endpoint] += 1
        self._metrics.held.labels(endpoint).inc()
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            wakers: set[asyncio.Future[Any]] = {changed, gone}
            await asyncio.wait(wakers, timeout=min(remaining_s, RECHECK_S), return_when=FIRST)
        finally:
            changed.cancel()
            self._held[endpoint] -= 1
            self._metrics.held.labels(endpoint).dec()
        if gone.done():
            raise Unavailable(f"the client of endpoint {endpoint!r} left while it was held")
