"""Check a recommendation: deploy it, load it through the gateway, compare with the promise.

The recommended configuration is deployed to an endpoint of its own (``ENDPOINT-verify`` by
default), never onto the endpoint it was computed for: that one serves users, and replacing
its deployment to test a promise would move their traffic before the promise is known to
hold. An endpoint that already exists is refused for the same reason (and because the check
removes what it deployed). The asked rate (without the headroom, which is the promise's
margin) is sent open-loop through the gateway, to ``/v2/models/ENDPOINT/infer``, with the
version's golden requests, for a bounded time; the promise holds when no request failed, at
least 99% of the rate was answered and p99 stayed within the target (``load.is_carried``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx

from ferryman.capacity.load import is_carried, open_loop, why_not_carried
from ferryman.capacity.recommend import Candidate
from ferryman.capacity.sweep import BASE_VARIANT
from ferryman.errors import DeadlineExceeded, InvalidInput
from ferryman.gateway.routes import RouteTable
from ferryman.registry import DeploymentSpec, LoadStep, VariantSpec
from ferryman.registry.records import Record

VERIFY_SUFFIX = "-verify"
MAX_VERIFY_S = 600.0


class Verification(Record):
    endpoint: str
    configuration: str
    replicas: int
    promised_qps: float
    promised_p99_ms: float
    step: LoadStep
    is_kept: bool

    @property
    def is_carried(self) -> bool:
        return is_carried(self.step, self.promised_p99_ms)

    @property
    def why_not(self) -> str:
        return why_not_carried(self.step, self.promised_p99_ms)


def verify_endpoint(endpoint: str, given: str | None, existing: Sequence[str]) -> str:
    """The endpoint the check deploys to: ``given``, else ``ENDPOINT-verify``; never one that
    exists."""
    name = given or f"{endpoint}{VERIFY_SUFFIX}"
    if name in existing:
        raise InvalidInput(
            f"endpoint {name!r} exists; --verify deploys to an endpoint of its own and removes "
            "it afterwards, so it will not touch one that serves: name a new one with "
            "--verify-endpoint, or undeploy it first"
        )
    return name


def verify_spec(name: str, model: str, version: int, best: Candidate) -> DeploymentSpec:
    """The recommended configuration as a deployment: its variant, batching, threads and
    replica count, fixed (no autoscaling, which would change what is measured)."""
    config = best.config
    kind = None if config.variant == BASE_VARIANT else config.variant
    variant = VariantSpec(model=model, version=version, kind=kind, replicas=best.replicas)
    return DeploymentSpec(
        endpoint=name,
        variants=(variant,),
        max_batch_size=config.max_batch_size,
        max_delay_ms=config.max_delay_ms,
        intra_op_threads=config.intra_op_threads,
    )


def wait_routed(
    published: Callable[[], RouteTable | None],
    endpoint: str,
    replicas: int,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Wait until the gateways route ``endpoint`` to ``replicas`` backends; seconds waited."""
    start = clock()
    while True:
        table = published()
        route = table.endpoints.get(endpoint) if table is not None else None
        routed = sum(len(v.backends) for v in route.variants) if route is not None else 0
        if routed >= replicas:
            return clock() - start
        if clock() - start > timeout_s:
            raise DeadlineExceeded(
                f"endpoint {endpoint!r} has {routed} of {replicas} replicas routed after "
                f"{timeout_s:g} s; does the control plane run (ferryman up)? See "
                "`ferryman logs`"
            )
        sleep(0.2)


async def load_through_gateway(
    gateway_url: str, endpoint: str, bodies: Sequence[bytes], qps: float, duration_s: float
) -> LoadStep:
    """``qps`` for ``duration_s`` seconds, open-loop, to the endpoint through the gateway."""
    if not 0 < duration_s <= MAX_VERIFY_S:
        raise InvalidInput(
            f"--verify-seconds {duration_s:g} is not in (0, {MAX_VERIFY_S:g}]; e.g. 60"
        )
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10.0, limits=limits) as client:
        return await open_loop(
            client, f"/v2/models/{endpoint}/infer", bodies, qps, duration_s=duration_s
        )
