"""Capacity and cost: stored capacity results, sweeps as background jobs, endpoint costs.

``POST /api/v1/models/{model}/versions/{version}/capacity`` starts a sweep (a job: it takes
minutes) and answers 202; ``GET /api/v1/capacity/jobs/{id}`` follows it. The grid is bounded
here, tighter than on the CLI, so one request cannot occupy the machine for hours.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ferryman.capacity.cost import MAX_DAYS, CostHistory, CostReport, fleet_costs, fleet_spend
from ferryman.capacity.jobs import CapacityJob, CapacityJobs
from ferryman.capacity.sweep import SweepPlan, SweepRequest, golden_bodies, variants_to_measure
from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.names import validate_name
from ferryman.registry import CapacityResult

router = APIRouter(prefix="/api/v1")

Grid = Annotated[list[float], Field(min_length=1, max_length=4)]


class CapacityRequest(BaseModel):
    """A sweep to run; the defaults are the CLI's small grid."""

    model_config = ConfigDict(extra="forbid")

    p99_ms: float = Field(default=50.0, gt=0, le=60_000)
    variants: list[str] = Field(default_factory=list, max_length=4)
    batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [1, 16], min_length=1, max_length=4
    )
    delays_ms: list[Annotated[float, Field(ge=0, le=1000)]] = Field(
        default_factory=lambda: [2.0], min_length=1, max_length=3
    )
    threads: list[Annotated[int, Field(ge=0, le=64)]] = Field(
        default_factory=lambda: [1, 2], min_length=1, max_length=3
    )
    start_qps: float = Field(default=20.0, gt=0, le=100_000)
    rate_factor: float = Field(default=2.0, gt=1, le=10)
    max_qps: float = Field(default=5000.0, gt=0, le=100_000)
    step_s: float = Field(default=3.0, gt=0, le=10)
    refine_steps: int = Field(default=2, ge=0, le=4)
    again: bool = False


@router.get("/models/{model}/versions/{version}/capacity")
def get_capacity(
    model: str, version: str, registry: RegistryDep, p99_ms: float | None = None
) -> list[CapacityResult]:
    """The capacity results stored with the version (of one p99 target when given)."""
    return registry.capacity.of(model, version, p99_ms)


@router.post("/models/{model}/versions/{version}/capacity", status_code=202)
def start_capacity(
    model: str,
    version: str,
    body: CapacityRequest,
    *,
    request: Request,
    registry: RegistryDep,
    actor: ActorDep,
) -> CapacityJob:
    """Start measuring the version's configurations not yet stored (all with ``again``)."""
    number = registry.get_version(model, version).version
    plan = SweepPlan(
        p99_target_ms=body.p99_ms,
        batch_sizes=tuple(body.batch_sizes),
        delays_ms=tuple(body.delays_ms),
        threads=tuple(body.threads),
        start_qps=body.start_qps,
        rate_factor=body.rate_factor,
        max_qps=body.max_qps,
        step_s=body.step_s,
        refine_steps=body.refine_steps,
    )
    settings = request.app.state.settings.model_copy(update={"user": actor})
    sweep = SweepRequest(model, number, plan, tuple(body.variants), body.again)
    # What would fail the job at once fails the request instead: a clear 400, no job.
    plan.configurations(variants_to_measure(registry, sweep))
    golden_bodies(registry.get_reference(model, number), model, number)
    return jobs_of(request).start(registry, settings, sweep)


@router.get("/capacity/jobs/{job_id}")
def get_capacity_job(job_id: str, request: Request) -> CapacityJob:
    return jobs_of(request).get(job_id)


@router.get("/costs")
def get_costs(registry: RegistryDep, request: Request) -> CostReport:
    """Every endpoint's cost per hour and per 1,000 requests, from the latest samples."""
    return fleet_costs(registry, request.app.state.settings, time.time())


@router.get("/costs/daily")
def get_daily_costs(
    registry: RegistryDep,
    request: Request,
    days: Annotated[
        int, Query(ge=1, le=MAX_DAYS, description="UTC days back, today included.")
    ] = 7,
    endpoint: Annotated[str | None, Query(description="One endpoint; all if absent.")] = None,
) -> CostHistory:
    """Each variant's replica-seconds and cost per UTC day, from the metric history, and what
    scale-to-zero and INT8 saved over the window."""
    if endpoint is not None:
        validate_name(endpoint, "endpoint name")
    return fleet_spend(registry, request.app.state.settings, time.time(), days, endpoint)


def jobs_of(request: Request) -> CapacityJobs:
    jobs: CapacityJobs = request.app.state.capacity_jobs
    return jobs
