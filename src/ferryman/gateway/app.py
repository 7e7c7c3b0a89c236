"""The gateway's ASGI app: paths and limits at the edge, then route, hold, forward, mirror.

A bare ASGI callable rather than a framework router: the gateway serves a handful of fixed
paths and forwards bytes, so each request costs one path split, one dict lookup and one
pure :func:`~ferryman.gateway.routes.pick_variant` call before the bytes go out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ferryman.config import GatewaySettings, Settings
from ferryman.errors import (
    DeadlineExceeded,
    FerrymanError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from ferryman.gateway.health import BackendHealth
from ferryman.gateway.holding import Holding
from ferryman.gateway.keycap import StickyKeyCap
from ferryman.gateway.messages import (
    Answer,
    Message,
    RawHeaders,
    Receive,
    Scope,
    Send,
    check_headers,
    error_answer,
    json_answer,
    read_body,
    send_answer,
    too_large,
)
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.gateway.paths import Target, is_openai_path, parse_target
from ferryman.gateway.pool import ConnectionPool
from ferryman.gateway.proxy import NoLiveBackend, Proxy
from ferryman.gateway.routefile import RouteFile
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute, pick_variant
from ferryman.gateway.shadow import PrimaryAnswer, ShadowMirror
from ferryman.gateway.streaming import StreamRelay
from ferryman.gateway.transport import REQUEST_DROPPED, Transport, Upstream
from ferryman.host_policy import HostPolicy
from ferryman.types import Clock
from ferryman.version import __version__

logger = logging.getLogger(__name__)

VARIANT_HEADER = b"ferryman-variant"
_BEARER = (b"Bearer ", b"bearer ")
HEALTH_PATHS = ("/-/healthz", "/v2/health/live", "/v2/health/ready")
OWN_PATHS = frozenset(("/metrics", *HEALTH_PATHS, "/-/held", "/v2"))
"""The gateway's own paths, open to anyone: health, counts and its metadata, nothing of any
request. Every other path is an endpoint's (:func:`~.paths.proxied_routes`)."""
SERVER_METADATA = MappingProxyType(
    {
        "name": "ferryman-gateway",
        "version": __version__,
        "extensions": ["binary_tensor_data", "tf_serving_predict", "plain_predict"],
    }
)
"""``GET /v2``: the V2 server metadata. The gateway forwards bytes, so it speaks the
replicas' HTTP extensions (gRPC is served by replicas only)."""


def create_gateway(settings: Settings) -> Gateway:
    """The gateway for these settings, reading ``gateway.routes_file`` (or the data dir's)."""
    return Gateway(settings.gateway, routes_file=settings.routes_path)


class Gateway:
    """The ASGI app. ``set_routes`` swaps the table in whole; a lifespan starts the pools.

    >>> gateway = Gateway(GatewaySettings())
    >>> gateway.set_routes(RouteTable(generation=1, endpoints={}))
    >>> gateway.routes.generation
    1
    """

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        routes_file: Path | None = None,
        transport: Callable[[GatewaySettings], Transport] = ConnectionPool,
        clock: Clock = time.monotonic,
        draw: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        cap = StickyKeyCap(
            settings.sticky_judged_per_key, settings.sticky_window_s, settings.sticky_keys_max,
            clock,
        )  # fmt: skip
        self.metrics = GatewayMetrics(cap)
        self.routes = RouteTable(generation=0, endpoints={})
        self._token_owners: dict[bytes, str] = {}
        """The table's inference tokens: endpoint by the token's SHA-256 (raw bytes)."""
        self._make_transport = transport
        self._clock = clock
        # Its own generator: traffic splitting needs uniform draws, not secrecy.
        self._draw = draw or random.Random().random  # noqa: S311
        self._holding = Holding(self.metrics, clock)
        self._hosts = HostPolicy.for_server(settings.host, settings.port, settings.allowed_hosts)
        self._health = BackendHealth(settings.backend_recheck_s, clock)
        self._proxy: Proxy | None = None
        self._shadow: ShadowMirror | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._relay = StreamRelay(
            settings, self.metrics, self._health, self._holding, route_of=self._route,
            draw=self._draw,
        )  # fmt: skip
        self.route_file = (
            RouteFile(routes_file, self.set_routes, self.metrics, settings.backend_hosts)
            if routes_file
            else None
        )

    def set_routes(self, table: RouteTable) -> None:
        """Apply a new route table at once; held requests are routed again."""
        if table.generation != self.routes.generation and self._proxy is not None:
            self._proxy.forget(
                {b for r in table.endpoints.values() for v in r.variants for b in v.backends}
            )
        self.routes = table
        self._token_owners = {bytes.fromhex(d): name for d, name in table.inference_tokens.items()}
        self.metrics.route_generation.set(table.generation)
        self._holding.notify()
        logger.info(
            "route table generation %d: %d endpoints", table.generation, len(table.endpoints)
        )

    def held(self) -> dict[str, int]:
        """Requests waiting for a ready replica now, by endpoint (the autoscaler's demand)."""
        return self._holding.held()

    async def start(self) -> None:
        """Open the pools, load the route file and start watching it."""
        self._proxy = Proxy(self._make_transport(self.settings), self._health, self.metrics)
        self._shadow = ShadowMirror(self._proxy, self.metrics, self.settings)
        if self.route_file is not None:
            self.route_file.check()
            interval_s = self.settings.routes_poll_interval_s
            self._watcher = asyncio.create_task(self.route_file.watch(interval_s))

    async def close(self) -> None:
        """Stop watching, cancel shadow copies, close the pools."""
        if self._watcher is not None:
            self._watcher.cancel()
            with suppress(asyncio.CancelledError):
                await self._watcher
        if self._shadow is not None:
            await self._shadow.close()
        if self._proxy is not None:
            await self._proxy.transport.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and is_openai_path(scope["path"]):
            refusal = self._openai_refusal(scope)
            if refusal is None:
                await self._relay.relay(scope, receive, send)
            else:
                await send_answer(send, error_answer(refusal))
        elif scope["type"] == "http":
            try:
                refusal = self._hosts.refusal(
                    scope["headers"], scope["method"], scope.get("scheme", "http")
                )
                if refusal is not None:
                    raise refusal
                answer = await self._answer(scope, receive)
            except FerrymanError as exc:
                answer = error_answer(exc)
            except Exception:  # a bug must still answer in the protocol's shape
                logger.exception("gateway failed on %s", scope["path"][:120])
                answer = error_answer(FerrymanError("the gateway failed; see its log"))
            await send_answer(send, answer)

    def _openai_refusal(self, scope: Scope) -> FerrymanError | None:
        """What an OpenAI path is refused for before it is relayed: the same Host and Origin
        rule as every path, and the endpoint's inference token when it asks for one."""
        refusal = self._hosts.refusal(
            scope["headers"], scope["method"], scope.get("scheme", "http")
        )
        if refusal is not None:
            return refusal
        endpoint = scope["path"].split("/")[2]  # /endpoints/ENDPOINT/v1/...
        route = self.routes.endpoints.get(endpoint)
        if route is not None and route.require_token:
            try:
                self._check_token(scope["headers"], endpoint)
            except FerrymanError as exc:
                return exc
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        path: str = scope["path"]
        if path in OWN_PATHS:
            return self._own(path, scope["method"])
        target = self._admit(scope["method"], path, scope["headers"])
        settings = self.settings
        try:  # a client trickling its body (slowloris) holds a connection for this long only
            async with asyncio.timeout(settings.request_timeout_s):
                body = await read_body(scope["headers"], receive, settings.max_body_bytes)
        except TimeoutError as exc:
            raise self.late_body() from exc
        return await self._exchange(target, scope["headers"], body, receive)

    def late_body(self) -> DeadlineExceeded:
        """The 504 of a request whose body did not arrive within ``request_timeout_s``."""
        return DeadlineExceeded(
            f"the request body did not arrive within {self.settings.request_timeout_s:g} s"
        )

    async def answer_read(  # noqa: PLR0917 - the parts of one request, as the server has them
        self,
        method: str,
        path: str,
        headers: RawHeaders,
        scheme: str,
        body: bytes,
        receive: Receive,
    ) -> Answer:
        """The answer to a request on a proxied path whose body the server has read (the fast
        lane, :mod:`~ferryman.gateway.fastlane`): the checks of the ASGI path, in its order.
        ``receive`` returns when the client goes away."""
        try:
            refusal = self._hosts.refusal(headers, method, scheme)
            if refusal is not None:
                raise refusal
            target = self._admit(method, path, headers)
            if len(body) > self.settings.max_body_bytes:
                raise too_large(len(body), self.settings.max_body_bytes)
            return await self._exchange(target, headers, body, receive)
        except FerrymanError as exc:
            return error_answer(exc)
        except Exception:  # a bug must still answer in the protocol's shape
            logger.exception("gateway failed on %s", path[:120])
            return error_answer(FerrymanError("the gateway failed; see its log"))

    def _admit(self, method: str, path: str, headers: RawHeaders) -> Target:
        """The target of a request on a proxied path, before its body is read: 404 for an
        unknown path or endpoint, 405, 431 for too many headers, 401/403 without its token."""
        target = parse_target(method, path)
        if target is None:
            raise NotFound(f"no gateway route for {path[:120]!r}; see /v2/models/ENDPOINT/infer")
        settings = self.settings
        check_headers(headers, settings.max_header_count, settings.max_header_bytes)
        route = self._route(target.endpoint)  # 404 before reading a body for an unknown one
        if route.require_token:
            self._check_token(headers, route.endpoint)
        return target

    def _own(self, path: str, method: str) -> Answer:
        """The gateway's own read-only paths: metrics, health, held requests, V2 metadata."""
        if method != "GET":
            raise MethodNotAllowed(f"{path!r} takes GET, not {method[:10]}", ("GET",))
        if path == "/metrics":
            return Answer(
                200, [(b"content-type", b"text/plain; version=0.0.4")], self.metrics.exposition()
            )
        if path == "/-/held":
            return json_answer(200, {"held": self.held()})
        if path == "/v2":
            return json_answer(200, dict(SERVER_METADATA))
        return json_answer(200, self._health_answer())

    def _health_answer(self) -> dict[str, object]:
        """The table held (the control plane compares it with its own) and which process
        answers (of gateways sharing a port, the control plane kills a hung one by it)."""
        routes = self.routes
        return {
            "status": "ok",
            "generation": routes.generation,
            "registry": routes.registry,
            "pid": os.getpid(),
        }

    async def _exchange(
        self, target: Target, raw_headers: RawHeaders, body: bytes, receive: Receive
    ) -> Answer:
        forwarded = _forwarded(raw_headers)
        request = Request(target, raw_headers, forwarded, body, self._clock(), receive)
        in_flight = self.metrics.in_flight_of(target.endpoint)
        in_flight.inc()
        try:
            variant, answer = await self._deliver(request)
        finally:
            in_flight.dec()
        duration_s = self._clock() - request.started
        pinned = target.version is not None  # the client's pick: no sample of the split
        key = None if pinned else self._sticky_key(target.endpoint, raw_headers)
        self.metrics.answered(
            target.endpoint, variant.name, answer.status, duration_s, pinned=pinned, sticky_key=key
        )
        headers_out = [*answer.headers, (VARIANT_HEADER, variant.name.encode())]
        return Answer(answer.status, headers_out, answer.body)

    async def _deliver(self, request: Request) -> tuple[VariantRoute, Answer]:
        """Route, forward, and hold while the chosen variant has no live replica."""
        draw = self._draw()
        deadline: float | None = None
        gone: asyncio.Future[Message] | None = None  # the client's disconnect, while held
        try:
            while True:
                route = self._route(request.target.endpoint)
                variant = self._pick(route, request, draw)
                try:
                    return variant, await self._forward(route, variant, request)
                except NoLiveBackend:
                    pass
                except FerrymanError as exc:
                    return variant, error_answer(exc)
                deadline = deadline or request.started + route.hold_timeout_s
                gone = gone or asyncio.ensure_future(request.receive())
                try:
                    await self._holding.wait(route, deadline, gone)
                except FerrymanError as exc:
                    return variant, error_answer(exc)
        finally:
            if gone is not None:
                gone.cancel()

    async def _forward(
        self, route: EndpointRoute, variant: VariantRoute, request: Request
    ) -> Answer:
        proxy = self._running_proxy()
        if not proxy.has_live_backend(variant):
            raise NoLiveBackend(variant.name)
        primary = self._mirror(route, variant, request)
        answer: Answer | None = None
        try:
            answer = await proxy.forward(route.endpoint, variant, request.upstream(variant.model))
            return answer
        finally:
            if primary is not None and not primary.done():
                primary.set_result(answer)

    def _mirror(
        self, route: EndpointRoute, variant: VariantRoute, request: Request
    ) -> PrimaryAnswer | None:
        """Start a shadow copy of an inference request (not of reads, not of a versioned one)."""
        if route.shadow is None or variant.name == route.shadow or self._shadow is None:
            return None
        if request.target.method != "POST" or request.target.version is not None:
            return None
        copy = request.upstream(route.variant(route.shadow).model)
        return self._shadow.mirror(route, copy)

    def _route(self, endpoint: str) -> EndpointRoute:
        route = self.routes.endpoints.get(endpoint)
        if route is None:
            self.metrics.unknown_endpoint.inc()
            raise NotFound(f"endpoint {endpoint!r} is not deployed; see `ferryman endpoints list`")
        return route

    def _check_token(self, headers: RawHeaders, endpoint: str) -> None:
        """The request carries one of ``endpoint``'s inference tokens: one SHA-256 and one
        dict lookup (revoked tokens left the table at its last publish)."""
        credential = b""
        for name, value in headers:
            if name == b"authorization":
                if value[:7] in _BEARER:
                    credential = value[7:]
                break
        owner = self._token_owners.get(hashlib.sha256(credential).digest())
        if owner is None:
            raise Unauthenticated(
                f"endpoint {endpoint!r} needs an inference token: send 'Authorization: Bearer "
                f"TOKEN' (ferryman tokens create --endpoint {endpoint} --scope infer)"
            )
        if owner != endpoint:
            raise Forbidden(f"this token is for endpoint {owner!r}, not {endpoint!r}")

    def _sticky_key(self, endpoint: str, raw_headers: RawHeaders) -> bytes | None:
        """The request's sticky key on ``endpoint`` (the last such header, as routing reads
        it), or None where the route has no sticky header or the request sent none."""
        route = self.routes.endpoints.get(endpoint)
        name = route.sticky_header if route is not None else None
        if name is None:
            return None
        wanted = name.encode("latin-1")
        key = None
        for header, value in raw_headers:
            if header == wanted:
                key = value
        return key

    @staticmethod
    def _pick(route: EndpointRoute, request: Request, draw: float) -> VariantRoute:
        target = request.target
        if target.version is None:
            if not (route.rules or route.sticky_header):  # no header decides: none decoded
                return pick_variant(route, NO_HEADERS, draw)
            return pick_variant(route, request.header_map(), draw)
        serving = [v for v in route.weighted() if v.version == target.version]
        if not serving:
            versions = sorted({v.version for v in route.weighted()})
            raise NotFound(
                f"endpoint {route.endpoint!r} serves versions {versions}, not {target.version}"
            )
        return serving[int(draw * len(serving)) % len(serving)]

    def _running_proxy(self) -> Proxy:
        if self._proxy is None:
            raise Unavailable("the gateway is starting; try again shortly", retry_after_s=1)
        return self._proxy


Forwarded = tuple[tuple[bytes, bytes], ...]
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Request:
    """One proxied request as the gateway holds it: target, headers, body, arrival time."""

    target: Target
    raw_headers: RawHeaders
    forwarded: Forwarded
    body: bytes
    started: float
    receive: Receive

    def header_map(self) -> dict[str, str]:
        """The request's headers by lowercase name (the last of a repeated one)."""
        return {name.decode("latin-1"): value.decode("latin-1") for name, value in self.raw_headers}

    def upstream(self, model: str) -> Upstream:
        """The request for a replica of ``model``."""
        path = self.target.upstream_path(model)
        return Upstream(self.target.method, path, self.forwarded, self.body)


def _forwarded(raw_headers: RawHeaders) -> Forwarded:
    """Request headers for the replica: end-to-end ones only (RFC 9110 7.6.1), so neither
    the hop-by-hop ones nor those a ``connection`` header names."""
    named: frozenset[bytes] | set[bytes] = frozenset()
    for name, value in raw_headers:
        if name == b"connection":
            named = {token.strip().lower() for token in value.split(b",")}
    return tuple(
        (name, value)
        for name, value in raw_headers
        if name not in REQUEST_DROPPED and name not in named
    )
