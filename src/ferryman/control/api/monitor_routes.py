"""What the monitor saw, for the dashboard and for Prometheus.

``GET /api/v1/endpoints`` gives every deployed endpoint's live status from the monitor's
newest sample (nothing is scraped on request), ``GET /api/v1/endpoints/{e}/history`` the
recorded series, and ``GET /metrics`` the series only Ferryman computes as Prometheus gauges.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryman.control.api.registry_routes import RegistryDep
from ferryman.control.monitor.exposition import exposition
from ferryman.control.monitor.history import HistoryView, downsample
from ferryman.errors import InvalidInput, NotFound
from ferryman.names import validate_name
from ferryman.registry import SERIES, AlertStatus, Registry

router = APIRouter()

DEFAULT_SINCE_S = 3600.0


def history_of(request: Request) -> HistoryView:
    history: HistoryView = request.app.state.history
    return history


HistoryDep = Annotated[HistoryView, Depends(history_of)]


class VariantStatus(BaseModel):
    name: str
    model: str
    version: int
    weight: float = Field(description="Share of traffic now, in percent.")
    replicas_desired: int
    replicas_ready: int
    qps: float | None
    error_rate: float | None = Field(description="Share of 5xx answers (server errors).")
    client_error_rate: float | None = Field(
        description="Share of 4xx answers: requests the variant refused."
    )
    p50_ms: float | None
    p99_ms: float | None


class EndpointStatus(BaseModel):
    endpoint: str
    variants: list[VariantStatus]
    rollout_id: int | None = Field(description="The rollout in progress, if any.")
    alerts_firing: int


class Series(BaseModel):
    variant: str
    name: str
    points: list[tuple[float, float]] = Field(description="[unix_time_s, value], oldest first.")


class EndpointHistory(BaseModel):
    endpoint: str
    resolution_s: float
    series: list[Series]


@router.get("/api/v1/endpoints")
def list_endpoint_status(registry: RegistryDep, history: HistoryDep) -> list[EndpointStatus]:
    """Every deployed endpoint: its variants with their newest sample, rollout and alerts."""
    latest = history.latest()
    rollouts = {r.endpoint: r.id for r in registry.rollouts.list(active_only=True)}
    firing: dict[str, int] = {}
    for alert in registry.alerts.find(AlertStatus.FIRING, limit=1000):
        firing[alert.endpoint] = firing.get(alert.endpoint, 0) + 1
    found = []
    for deployment in registry.deployments.list():
        spec = deployment.spec
        variants = []
        for variant in spec.variants:
            sample = latest.get((deployment.endpoint, variant.name))
            values = sample.values if sample is not None else {}
            desired = variant.replicas if spec.autoscaling is None else None
            variants.append(
                VariantStatus(
                    name=variant.name, model=variant.model, version=variant.version,
                    weight=values.get("weight", float(variant.weight)),
                    replicas_desired=round(values.get("replicas_desired", desired or 0)),
                    replicas_ready=round(values.get("replicas", 0.0)),
                    qps=values.get("qps"), error_rate=values.get("error_rate"),
                    client_error_rate=values.get("client_error_rate"),
                    p50_ms=values.get("p50_ms"), p99_ms=values.get("p99_ms"),
                )
            )  # fmt: skip
        found.append(
            EndpointStatus(
                endpoint=deployment.endpoint,
                variants=variants,
                rollout_id=rollouts.get(deployment.endpoint),
                alerts_firing=firing.get(deployment.endpoint, 0),
            )
        )
    return found


class HistoryQuery(BaseModel):
    """Which part of the history: how far back, which series (checked by the route)."""

    model_config = ConfigDict(extra="forbid")

    since_s: str | None = Field(default=None, description="Seconds back from now [3600].")
    series: str | None = Field(default=None, description="Comma-separated series; all if absent.")
    step_s: str | None = Field(
        default=None,
        description="Seconds per point, at least the monitor's resolution [its resolution]; "
        "a longer step gives one point per step: the peak of latency, error, drift, "
        "restart and resource series, the mean of the others.",
    )


@router.get("/api/v1/endpoints/{endpoint}/history")
def endpoint_history(
    request: Request,
    endpoint: str,
    registry: RegistryDep,
    history: HistoryDep,
    query: Annotated[HistoryQuery, Query()],
) -> EndpointHistory:
    """The recorded series of every variant of ``endpoint`` over the last ``since_s``."""
    validate_name(endpoint, "endpoint name")
    control = request.app.state.settings.control
    back_s = _since_s(query.since_s, control.history_retention_s)
    names = _series(query.series)
    step_s = _step_s(query.step_s, control.monitor_interval_s, back_s)
    points = history.points(endpoint, time.time() - back_s, names)
    if not points and not _is_deployed(registry, endpoint):
        raise NotFound(f"endpoint {endpoint!r} is not deployed and has no recorded history")
    if step_s > control.monitor_interval_s:
        points = downsample(points, step_s)
    return EndpointHistory(
        endpoint=endpoint,
        resolution_s=step_s,
        series=[Series(variant=v, name=n, points=p) for (v, n), p in points.items()],
    )


@router.get("/metrics", response_class=Response)
def metrics(request: Request, registry: RegistryDep, history: HistoryDep) -> Response:
    """The monitor's newest samples as Prometheus gauges (``ferryman_variant_<series>``)."""
    control = request.app.state.settings.control
    firing = registry.alerts.find(AlertStatus.FIRING, limit=1000)
    text = exposition(history.latest(), firing, time.time(), 3 * control.monitor_interval_s)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def _seconds(given: str) -> float:
    """A query's number of seconds; NaN (out of every range) when it is not a number."""
    try:
        return float(given)
    except ValueError:
        return math.nan


def _since_s(given: str | None, most_s: float) -> float:
    if given is None:
        return min(DEFAULT_SINCE_S, most_s)
    value = _seconds(given)
    if not 0 < value <= most_s:
        raise InvalidInput(
            f"since_s {given[:40]!r} is not a number of seconds in (0, {most_s:g}] (the "
            f"history kept); e.g. since_s=3600"
        )
    return value


def _step_s(given: str | None, resolution_s: float, back_s: float) -> float:
    if given is None:
        return resolution_s
    value = _seconds(given)
    if not resolution_s <= value <= back_s:
        raise InvalidInput(
            f"step_s {given[:40]!r} is not a number of seconds in [{resolution_s:g}, "
            f"{back_s:g}] (the monitor's resolution to the window asked for); e.g. step_s=60"
        )
    return value


def _series(given: str | None) -> list[str]:
    if given is None or not given.strip():
        return list(SERIES)
    names = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERIES]
    if unknown:
        raise InvalidInput(
            f"unknown series {', '.join(repr(n[:40]) for n in unknown[:5])}; "
            f"use any of: {', '.join(SERIES)}"
        )
    return list(dict.fromkeys(names))


def _is_deployed(registry: Registry, endpoint: str) -> bool:
    return any(d.endpoint == endpoint for d in registry.deployments.list())
