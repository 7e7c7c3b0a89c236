"""``ferryman recommend --verify``: deploy the recommendation, load it, report against the
promise, remove it (see ``capacity.verify`` for the choices)."""

from __future__ import annotations

import asyncio
import logging

from rich.table import Table

from ferryman.capacity.recommend import Recommendation
from ferryman.capacity.sweep import golden_bodies
from ferryman.capacity.verify import (
    Verification,
    load_through_gateway,
    verify_endpoint,
    verify_spec,
    wait_routed,
)
from ferryman.cli.context import CliContext
from ferryman.cli.output import errors
from ferryman.control.data_dir_lock import running_on
from ferryman.errors import InvalidInput
from ferryman.registry import VariantSpec
from ferryman.runtimes import create_runtime

logger = logging.getLogger(__name__)

READY_MARGIN_S = 30.0
"""Beyond the replica start-up timeout: the control loop's ticks and the gateway's reload."""


def verify_recommendation(
    state: CliContext,
    answer: Recommendation,
    main: VariantSpec,
    endpoint: str,
    *,
    name: str | None,
    duration_s: float,
    is_kept: bool,
) -> Verification:
    """Deploy ``answer.best`` to an endpoint of its own, send the asked rate through the
    gateway for ``duration_s``, and undeploy it again unless ``is_kept``."""
    settings = state.settings
    if settings.control.runtime == "local" and running_on(settings.data_dir) is None:
        raise InvalidInput(
            f"no control plane runs on {settings.data_dir}; --verify deploys through it: "
            "start it with `ferryman up` (same --data-dir), then verify again"
        )
    registry = state.registry()
    client = state.client()
    bodies = golden_bodies(registry.get_reference(main.model, main.version), main.model,
                           main.version)  # fmt: skip
    existing = [record.endpoint for record in client.list_deployments()]
    target = verify_endpoint(endpoint, name, existing)
    best = answer.best
    client.deploy(verify_spec(target, main.model, main.version, best))
    runtime = create_runtime(state.settings)
    try:
        errors.print(f"deployed {target}: {best.config.describe()} x {best.replicas}; waiting "
                     "for its replicas", markup=False, highlight=False)  # fmt: skip
        timeout_s = state.settings.control.replica_startup_timeout_s + READY_MARGIN_S
        wait_routed(runtime.published, target, best.replicas, timeout_s)
        (gateway,) = runtime.gateway_urls()[:1] or (_gateway_url(state),)
        errors.print(f"sending {answer.qps:g} qps through {gateway} for {duration_s:g} s",
                     markup=False, highlight=False)  # fmt: skip
        step = asyncio.run(load_through_gateway(gateway, target, bodies, answer.qps, duration_s))
    finally:
        runtime.close()
        if not is_kept:
            client.undeploy(target)
            errors.print(f"undeployed {target}", markup=False, highlight=False)
    return Verification(
        endpoint=target,
        configuration=best.config.describe(),
        replicas=best.replicas,
        promised_qps=answer.qps,
        promised_p99_ms=answer.p99_target_ms,
        step=step,
        is_kept=is_kept,
    )


def _gateway_url(state: CliContext) -> str:
    gateway = state.settings.gateway
    return f"http://{gateway.host}:{gateway.port}"


def verification_table(found: Verification) -> Table:
    verdict = "[green]kept[/]" if found.is_carried else f"[red]broken[/]: {found.why_not}"
    step = found.step
    table = Table(
        "",
        "promised",
        "achieved",
        title=f"Verify on {found.endpoint} ({'kept deployed' if found.is_kept else 'removed'})",
        caption=f"promise {verdict}",
    )
    table.add_row("configuration", f"{found.configuration} x {found.replicas}", "")
    table.add_row("rate", f"{found.promised_qps:g} qps", f"{step.achieved_qps:.1f} qps")
    p99 = "-" if step.p99_ms is None else f"{step.p99_ms:.1f} ms"
    table.add_row("p99", f"≤ {found.promised_p99_ms:g} ms", p99)
    p50 = "-" if step.p50_ms is None else f"{step.p50_ms:.1f} ms"
    table.add_row("p50", "", p50)
    table.add_row("failed", "0", f"{step.errors} of {step.sent}")
    return table
