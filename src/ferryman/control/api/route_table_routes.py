"""``GET /api/v1/routes``: the route table, as a long poll, for gateways on other nodes.

A gateway that cannot read the control plane's route-table file (the ``ray`` runtime puts
one on every node) asks for the table with the generation it holds: the answer comes as
soon as a newer table is published, or after ``wait_s`` as 304 (nothing newer). Until the
control plane has a table at all it answers 503, and the gateway keeps the table it has.
The bearer token is checked by the security middleware like on every other route.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ferryman.errors import NotFound, Unavailable
from ferryman.gateway.routes import RouteTable

router = APIRouter(prefix="/api/v1")

RouteView = Callable[[], RouteTable | None]
"""The table the control loop publishes now; None before its first pass."""
POLL_INTERVAL_S = 0.05


@router.get(
    "/routes",
    summary="The route table, once newer than after_generation (long poll)",
    responses={304: {"description": "Nothing newer within wait_s."}},
)
async def watch_routes(
    request: Request,
    after_generation: Annotated[
        int, Query(ge=-1, le=2**63 - 1, description="The generation the caller holds.")
    ] = -1,
    wait_s: Annotated[
        float, Query(ge=0, le=60, description="Longest wait for a newer table, in seconds.")
    ] = 20.0,
) -> Response:
    """The route table as soon as its generation is above ``after_generation``."""
    view: RouteView | None = request.app.state.routes
    if view is None:
        raise NotFound("this control plane publishes no route table (no control loop runs)")
    deadline_s = time.monotonic() + wait_s
    while True:
        table = view()
        if table is not None and table.generation > after_generation:
            return JSONResponse(table.model_dump(mode="json"))
        if time.monotonic() >= deadline_s:
            break
        await asyncio.sleep(POLL_INTERVAL_S)
    if table is None:
        raise Unavailable("no route table has been published yet; retry in a moment")
    return Response(status_code=304)
