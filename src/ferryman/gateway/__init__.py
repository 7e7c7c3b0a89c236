"""The gateway: the one address of all endpoints, applying the route table to each request.

A request takes these hops, one module each: :mod:`.app` (the ASGI edge: paths, limits,
errors) → :mod:`.holding` (waits while an endpoint has no ready replica) → :mod:`.proxy`
(chooses a replica, retries only connections that never reached one) → :mod:`.transport`
(keep-alive pools, bytes in and out). :mod:`.shadow` mirrors copies off the primary path.
"""

from __future__ import annotations

from ferryman.gateway.app import Gateway, create_gateway

__all__ = ["Gateway", "create_gateway"]
