"""The replica's ASGI app: routes, the one error renderer, the edge, and the model's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from ferryman.config import Settings
from ferryman.engines import ModelEngine
from ferryman.errors import FerrymanError
from ferryman.reference import ReferenceData
from ferryman.serving.cache import LruCache, ResponseCache
from ferryman.serving.dataplane import DataPlane
from ferryman.serving.edge import Edge
from ferryman.serving.http import ROUTES, render_error
from ferryman.serving.metrics import ReplicaIdentity


def create_app(
    settings: Settings,
    runtime: ModelEngine,
    identity: ReplicaIdentity,
    reference: ReferenceData | None = None,
) -> Starlette:
    """The ASGI app of a replica serving ``runtime`` as ``identity``.

    The model loads (and replays its golden requests) in the app's lifespan; until then,
    and if that fails, the replica is live but not ready. When ``settings.serving.grpc_port``
    is set, the gRPC service starts in the same lifespan, on the same data plane.
    """
    plane = DataPlane(identity, runtime, settings.serving, reference, _cache(settings))

    serving = settings.serving

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await plane.load()
        grpc_server = None
        if serving.grpc_port is not None:
            # gRPC only when asked for: importing grpcio costs a replica 17 MiB.
            from ferryman.serving.grpc import build_grpc_server  # noqa: PLC0415

            grpc_server = build_grpc_server(plane, serving.host, serving.grpc_port)
            await grpc_server.start()
        try:
            yield
        finally:
            plane.is_draining = True
            if grpc_server is not None:
                await grpc_server.stop(grace=serving.drain_timeout_s)
            await plane.unload()

    app = ReplicaApp(
        routes=list(ROUTES),
        exception_handlers={FerrymanError: render_error, HTTPException: render_error},
        lifespan=lifespan,
    )
    app.state.plane = plane
    return app


class ReplicaApp(Starlette):
    """Starlette whose outermost layer is the edge: routes, behind the exception handlers.

    The edge is the server-error layer: it answers V2 inference itself and renders
    ``{"error": ...}`` for anything that escapes the routes it hands on, so Starlette's own
    server-error layer would only add a coroutine and a wrapped ``send`` to every request.
    """

    def build_middleware_stack(self) -> ASGIApp:
        routed = ExceptionMiddleware(self.router, handlers=self.exception_handlers)
        return Edge(routed, self.state.plane)


def _cache(settings: Settings) -> ResponseCache | None:
    serving = settings.serving
    if serving.cache_redis_url is not None:
        from ferryman.serving.redis_cache import RedisCache  # noqa: PLC0415 (optional dep)

        return RedisCache(serving.cache_redis_url)
    if serving.cache_entries > 0:
        return LruCache(serving.cache_entries)
    return None
