"""Shadow traffic: a copy of a request goes to the shadow variant, off the primary's path.

The copy starts as soon as the primary's variant is chosen, runs concurrently, then waits
for the primary's answer and records how the two compare (:mod:`.comparison`). Its answer
is never returned. At most ``shadow_max_in_flight`` copies are on their way; more are
dropped and counted, so a slow shadow can never hold memory or delay the primary. The
copies are tasks this object owns and cancels on close.
"""

from __future__ import annotations

import asyncio
import logging

from ferryman.config import GatewaySettings
from ferryman.errors import FerrymanError
from ferryman.gateway.comparison import compare
from ferryman.gateway.messages import Answer
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.gateway.proxy import NoLiveBackend, Proxy
from ferryman.gateway.routes import EndpointRoute, VariantRoute
from ferryman.gateway.transport import Upstream

logger = logging.getLogger(__name__)

PrimaryAnswer = asyncio.Future[Answer | None]


class ShadowMirror:
    """Bounded shadow copies and their comparison with the primary."""

    def __init__(self, proxy: Proxy, metrics: GatewayMetrics, settings: GatewaySettings) -> None:
        self._proxy = proxy
        self._metrics = metrics
        self._max_in_flight = settings.shadow_max_in_flight
        self._timeout_s = settings.shadow_timeout_s
        self._tolerance = settings.shadow_tolerance
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def mirror(self, route: EndpointRoute, request: Upstream) -> PrimaryAnswer | None:
        """Start a copy; the caller resolves the returned future with the primary's answer.

        Returns ``None`` (and counts a drop) when too many copies are on their way.
        """
        variant = route.variant(route.shadow or "")
        if len(self._tasks) >= self._max_in_flight:
            self._metrics.shadow.labels(route.endpoint, variant.name, "dropped").inc()
            return None
        primary: PrimaryAnswer = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._copy(route.endpoint, variant, request, primary))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return primary

    async def close(self) -> None:
        """Cancel the copies on their way and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _copy(
        self, endpoint: str, variant: VariantRoute, request: Upstream, primary: PrimaryAnswer
    ) -> None:
        outcome = "error"
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._proxy.forward(endpoint, variant, request)
                outcome = compare(await primary, answer, self._tolerance)
        except (FerrymanError, NoLiveBackend, TimeoutError) as exc:
            logger.debug("%s: shadow %s failed: %s", endpoint, variant.name, exc)
        finally:
            if not primary.done():
                primary.cancel()
        self._metrics.shadow.labels(endpoint, variant.name, outcome).inc()
