"""``GET /api/v1/routes``: the route table, as a long poll, for gateways on other nodes.

A gateway that cannot read the control plane's route-table file (the ``ray`` runtime puts
one on every node) asks for the table with the generation it holds: the answer comes as
soon as a newer table is published, or after ``wait_s`` as 304 (nothing newer). Until the
control plane has a table at all it answers 503, and the gateway keeps the table it has.
It takes the route token (:func:`~ferryman.gateway.routewatch.route_token`, which reads
the route table and nothing else) or the control token, as a bearer token; it checks it
itself (the security middleware lists it among the routes with a credential of their own).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ferryman.errors import NotFound, Unauthenticated, Unavailable
from ferryman.gateway.routes import RouteTable
from ferryman.gateway.routewatch import route_token

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
    _authenticate(request)
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


def _authenticate(request: Request) -> None:
    token: str | None = request.app.state.token
    if token is None:  # auth is off for the whole API
        return
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    accepted = (route_token(token), token)
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(credential.strip().encode(), known.encode()) for known in accepted
    ):
        raise Unauthenticated(
            "the route table needs the route token (or the control token) as a bearer token"
        )
