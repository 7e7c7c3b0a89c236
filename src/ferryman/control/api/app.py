"""The control-plane API application: one security middleware, one error handler."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ferryman.capacity.jobs import CapacityJobs
from ferryman.config import Settings
from ferryman.control.api import (
    alert_routes,
    capacity_routes,
    deployment_routes,
    feedback_routes,
    fleet_routes,
    monitor_routes,
    registry_routes,
    rollout_routes,
    route_table_routes,
    token_routes,
    webhook_routes,
)
from ferryman.control.api.limits import BodyCap
from ferryman.control.api.responses import ERROR_RESPONSES
from ferryman.control.api.security import SecurityMiddleware, declare_auth
from ferryman.control.monitor.history import HistoryView, StoredHistory
from ferryman.dashboard.pages import Dashboard
from ferryman.dashboard.session import Sessions
from ferryman.errors import FerrymanError, describe_problem
from ferryman.registry import Registry, TokenBook
from ferryman.version import __version__

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    registry: Registry,
    token: str | None,
    *,
    history: HistoryView | None = None,
    fleet_stop: fleet_routes.FleetStopper | None = None,
    routes: route_table_routes.RouteView | None = None,
) -> FastAPI:
    """The API over ``registry`` and the dashboard; ``token`` None only when auth is off.

    ``history`` is the monitor's in-memory history when the control loop runs in this
    process; without it, the history routes read the registry's copy. ``fleet_stop``
    is the control loop's stop, for ``POST /api/v1/fleet/stop`` (``ferryman down``).
    """
    sessions = None if token is None else Sessions(token, settings.control.session_ttl_s)
    book = None if token is None else TokenBook(registry.tokens)
    app = FastAPI(
        title="Ferryman control plane",
        version=__version__,
        description="Models, versions, variants, runs and events. Bearer token required "
        "(or, from the dashboard at /ui/, its session cookie and CSRF token).",
        docs_url=None,  # Swagger UI would load a CDN's scripts on this origin; see README
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.history = history if history is not None else StoredHistory(registry.history)
    app.state.fleet_stop = fleet_stop
    app.state.routes = routes
    app.state.token = token
    app.state.token_book = book
    app.state.capacity_jobs = CapacityJobs()
    app.state.registering = asyncio.Lock()  # model uploads are inspected one at a time
    app.include_router(registry_routes.router)
    app.include_router(deployment_routes.router)
    app.include_router(feedback_routes.router)
    app.include_router(rollout_routes.router)
    app.include_router(monitor_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(route_table_routes.router)
    app.include_router(Dashboard(sessions, book).router())
    app.include_router(webhook_routes.router)
    app.include_router(fleet_routes.router)
    app.include_router(token_routes.router)
    app.include_router(capacity_routes.router)
    app.add_api_route("/healthz", _healthz, methods=["GET"], include_in_schema=False)
    app.exception_handler(FerrymanError)(_ferryman_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(Exception)(_unexpected_error)
    if token is not None:
        declare_auth(app)
    app.add_middleware(BodyCap, limit_bytes=settings.control.max_body_bytes)
    app.add_middleware(  # added last, so it runs first: nothing unauthenticated is read
        SecurityMiddleware,
        token=token,
        allowed_hosts=settings.control.allowed_hosts,
        sessions=sessions,
        bound_host=settings.control.host,
        tokens=book,
    )
    return app


async def _healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _ferryman_error(_: Request, exc: FerrymanError) -> JSONResponse:
    if exc.status_code >= 500:
        logger.error("request failed: %s", exc.message)
    headers = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return JSONResponse({"error": exc.message}, exc.status_code, headers=headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [describe_problem(error) for error in exc.errors()[:5]]
    return JSONResponse({"error": "; ".join(problems)}, 400)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # A bug still answers in the protocol's shape; the trace goes to the log only.
    logger.error("request failed: %s", type(exc).__name__, exc_info=exc)
    return JSONResponse({"error": "the control plane failed; see its log"}, 500)


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail)}, exc.status_code)
