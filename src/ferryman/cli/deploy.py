"""Deployment commands: deploy, scale, undeploy, endpoints list|show."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.table import Table

from ferryman.capacity.cost import fleet_costs
from ferryman.cli.capacity import show_costs
from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, print_json
from ferryman.cli.serve import parse_target
from ferryman.config import Settings
from ferryman.control.metrics.traffic import Traffic, traffic_by_variant
from ferryman.gateway.routes import RouteTable
from ferryman.registry import (
    Autoscaling,
    DeploymentRecord,
    DeploymentSpec,
    Registry,
    VariantSpec,
)
from ferryman.runtimes import create_runtime
from ferryman.types import Slot

SAMPLE_MAX_AGE_S = 60.0
"""Older monitor samples than this are not shown as "now" (the control loop samples every
10 s; an older one means it does not run)."""

endpoints_app = typer.Typer(
    rich_markup_mode=None, help="See endpoints: variants, weights, replicas, traffic."
)

Replicas = Annotated[int | None, typer.Option(help="Fixed replicas (no autoscaling).")]
MinReplicas = Annotated[int | None, typer.Option("--min", help="Autoscale from (0: to zero).")]
MaxReplicas = Annotated[int | None, typer.Option("--max", help="Autoscale up to.")]


def deploy(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="MODEL[:VERSION|@ALIAS] (default: latest).")],
    endpoint: Annotated[str | None, typer.Option(help="Endpoint name [the model's].")] = None,
    variant: Annotated[str | None, typer.Option(help="Variant kind, e.g. onnx-int8.")] = None,
    replicas: Replicas = None,
    min_replicas: MinReplicas = None,
    max_replicas: MaxReplicas = None,
    require_token: Annotated[
        bool | None,
        typer.Option(
            "--require-token/--no-require-token",
            help="Gateway requests need an inference token of this endpoint "
            "(ferryman tokens create --endpoint NAME --scope infer) [default: as it was].",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Deploy a version to an endpoint (its whole traffic); the control plane starts it."""
    client = cli_context(ctx).client()
    model, ref = parse_target(target)
    version = client.get_version(model, ref).version
    variant_spec = VariantSpec(model=model, version=version, kind=variant, replicas=replicas or 1)
    name = endpoint or model
    if require_token is None:  # a redeploy keeps the endpoint's token requirement
        existing = {record.endpoint: record for record in client.list_deployments()}.get(name)
        require_token = existing is not None and existing.spec.require_token
    spec = DeploymentSpec(
        endpoint=name,
        variants=(variant_spec,),
        autoscaling=_autoscaling(min_replicas, max_replicas),
        require_token=require_token,
    )
    _show(client.deploy(spec), json_output, "Deployed")


def scale(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    replicas: Replicas = None,
    min_replicas: MinReplicas = None,
    max_replicas: MaxReplicas = None,
    json_output: JsonOption = False,
) -> None:
    """Set fixed replicas, or autoscaling bounds, for every variant of an endpoint."""
    bounds = _autoscaling(min_replicas, max_replicas)
    record = cli_context(ctx).client().scale(endpoint, replicas, bounds)
    _show(record, json_output, "Scaled")


def undeploy(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    json_output: JsonOption = False,
) -> None:
    """Remove an endpoint; its replicas drain and stop."""
    _show(cli_context(ctx).client().undeploy(endpoint), json_output, "Undeployed")


@endpoints_app.command("list")
def list_endpoints(
    ctx: typer.Context,
    json_output: JsonOption = False,
    cost: Annotated[
        bool, typer.Option("--cost", help="Also cost per hour and per 1,000 requests.")
    ] = False,
) -> None:
    """Every endpoint with its variants, weights, replicas and traffic."""
    state = cli_context(ctx)
    if cost:
        show_costs(fleet_costs(state.registry(), state.settings, time.time()), json_output)
        return
    records = state.client().list_deployments()
    if json_output:
        print_json(records)
        return
    console.print(_endpoint_table(records, state.settings, state.registry()))


@endpoints_app.command("show")
def show_endpoint(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    json_output: JsonOption = False,
) -> None:
    """One endpoint: its desired state and what serves it now."""
    state = cli_context(ctx)
    record = state.client().get_deployment(endpoint)
    if json_output:
        print_json(record)
        return
    console.print(_endpoint_table([record], state.settings, state.registry()))


def _autoscaling(min_replicas: int | None, max_replicas: int | None) -> Autoscaling | None:
    if min_replicas is None and max_replicas is None:
        return None
    low = 1 if min_replicas is None else min_replicas
    return Autoscaling(min_replicas=low, max_replicas=max(low, max_replicas or 4))


def _show(record: DeploymentRecord, json_output: bool, verb: str) -> None:
    if json_output:
        print_json(record)
        return
    console.print(f"{verb} endpoint [bold]{record.endpoint}[/] (generation {record.generation})")


def _endpoint_table(
    records: list[DeploymentRecord], settings: Settings, registry: Registry
) -> Table:
    routes = _routes(settings)
    totals = _gateway_totals(settings)
    recent = _latest_samples(registry)
    table = Table("endpoint", "variant", "weight", "replicas", "qps", "p99", "4xx", "5xx",
                  "requests", title="Endpoints (qps, p99, 4xx and 5xx: the control loop's "
                  "latest sample, every 10 s)")  # fmt: skip
    for record in records:
        route = routes.endpoints.get(record.endpoint) if routes else None
        live_variants = {v.name: v for v in route.variants} if route else {}
        for variant in record.spec.variants:
            key = (record.endpoint, variant.name)
            live = live_variants.get(variant.name)
            desired = "auto" if record.spec.autoscaling else str(variant.replicas)
            now, total = recent.get(key, {}), totals.get(key, Traffic())
            ready = len(live.backends) if live else 0
            weight = live.weight if live else variant.weight
            role = " (shadow)" if variant.name == record.spec.shadow else ""
            table.add_row(
                record.endpoint,
                variant.name + role,
                f"{weight}%",
                f"{ready}/{desired} ready",
                _figure(now.get("qps"), "{:.1f}"),
                _figure(now.get("p99_ms"), "{:.1f} ms"),
                _figure(now.get("client_error_rate"), "{:.1%}"),
                _figure(now.get("error_rate"), "{:.1%}"),
                f"{total.requests:.0f}",
            )
    return table


def _routes(settings: Settings) -> RouteTable | None:
    """The route table the gateways hold now, as the runtime tells it."""
    runtime = create_runtime(settings)
    try:
        return runtime.published()
    finally:
        runtime.close()


def _gateway_totals(settings: Settings) -> dict[Slot, Traffic]:
    """Each variant's traffic since the gateway started, if it runs."""
    url = f"http://{settings.gateway.host}:{settings.gateway.port}/metrics"
    try:
        return traffic_by_variant(httpx.get(url, timeout=1).text)
    except httpx.HTTPError:
        return {}


def _latest_samples(registry: Registry) -> dict[Slot, dict[str, float]]:
    """The monitor's newest sample of each variant, if it is recent."""
    now_s = time.time()
    return {
        (sample.endpoint, sample.variant): sample.values
        for sample in registry.history.latest()
        if now_s - sample.time_s <= SAMPLE_MAX_AGE_S
    }


def _figure(value: float | None, shape: str) -> str:
    return "-" if value is None else shape.format(value)
