"""``/api/v1/rollouts`` and ``/api/v1/policies``: start, watch and steer rollouts; set policies.

A rollout to a version whose inputs the serving version's clients could not send is refused
(409, both signatures spelled out) unless the request says ``"force": true``. A policy may
carry an offline gate (``offline_metric``, ``max_offline_drop``, ``min_offline``).

A rollout record (``GET /rollouts``) carries its strategy, plan, status, weight, reason and
``state`` — the strategy's phase (``warming``, ``baking``, ``running``, ``shadowing``,
``canary``) and results (an A/B test's ``result``, a shadow's ``report``). Its timeline
(``GET /rollouts/{id}/events``) lists its events oldest first; each event's ``details``
hold the transition (``weight``, ``step_index``, ``status``, ``reason``) and the figures it
was decided on: ``figures`` of the window (verdict, requests, success_rate,
client_error_rate and the baseline's, p99_ms, accuracy, labelled, prediction_drift,
input_drift_psi), ``bake`` (a blue-green bake as a
whole), ``pool`` (wanted, ready, failures), ``test`` (an A/B look: metric, test, statistic,
p_value, alpha_per_look, required_per_arm, both arms' samples, successes and rate, winner)
or ``report`` (a shadow: compared, agreement, outcomes, errors, p99_ms).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.control.rollouts import steering
from ferryman.control.rollouts.plans import parse_plan, parse_strategy
from ferryman.registry import (
    MAX_VERSION,
    EventRecord,
    PolicyRecord,
    RolloutRecord,
    offline_gate,
)

router = APIRouter(prefix="/api/v1")

RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Rollout number.")]


class RolloutRequest(BaseModel):
    """Roll ``version`` out on ``endpoint`` by ``strategy`` with ``plan`` (defaults if empty)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(max_length=63)
    version: int = Field(ge=1, le=MAX_VERSION)
    strategy: str = Field(
        default="canary", max_length=16, description="canary, blue_green, ab_test or shadow."
    )
    plan: dict[str, Any] = Field(default_factory=dict)
    force: bool = Field(
        default=False,
        description="Start even when the serving version's clients could not call the version.",
    )


class PolicyRequest(BaseModel):
    """Roll every new version of the path's model out to ``endpoint`` by this plan — once
    its offline metric passes the offline gate, if one is set."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(default=None, max_length=63, description="[the model's name]")
    trigger: str = Field(default="registered", max_length=80, description="or 'alias:NAME'.")
    strategy: str = Field(default="canary", max_length=16)
    plan: dict[str, Any] = Field(default_factory=dict)
    offline_metric: str | None = Field(
        default=None, max_length=64, description="Offline metric a version must show first."
    )
    max_offline_drop: float | None = Field(
        default=None, description="Most its offline metric may be below production's."
    )
    min_offline: float | None = Field(default=None, description="Least its offline metric.")


@router.get("/rollouts")
def list_rollouts(
    registry: RegistryDep, endpoint: str | None = None, active_only: bool = False
) -> list[RolloutRecord]:
    return registry.rollouts.list(endpoint, active_only)


@router.post("/rollouts", status_code=201)
def start_rollout(body: RolloutRequest, registry: RegistryDep, actor: ActorDep) -> RolloutRecord:
    return steering.start_rollout(
        registry, body.endpoint, body.version,
        strategy=body.strategy, plan=body.plan, actor=actor, force=body.force,
    )  # fmt: skip


@router.get("/rollouts/{rollout_id}")
def get_rollout(rollout_id: RolloutId, registry: RegistryDep) -> RolloutRecord:
    return registry.rollouts.get(rollout_id)


@router.get("/rollouts/{rollout_id}/events")
def rollout_timeline(rollout_id: RolloutId, registry: RegistryDep) -> list[EventRecord]:
    return registry.rollouts.timeline(rollout_id)


@router.post("/rollouts/{rollout_id}/pause")
def pause_rollout(rollout_id: RolloutId, registry: RegistryDep, actor: ActorDep) -> RolloutRecord:
    return steering.pause(registry, rollout_id, actor)


@router.post("/rollouts/{rollout_id}/resume")
def resume_rollout(rollout_id: RolloutId, registry: RegistryDep, actor: ActorDep) -> RolloutRecord:
    return steering.resume(registry, rollout_id, actor)


@router.post("/rollouts/{rollout_id}/promote")
def promote_rollout(rollout_id: RolloutId, registry: RegistryDep, actor: ActorDep) -> RolloutRecord:
    return steering.promote(registry, rollout_id, actor)


@router.post("/rollouts/{rollout_id}/abort")
def abort_rollout(rollout_id: RolloutId, registry: RegistryDep, actor: ActorDep) -> RolloutRecord:
    return steering.abort(registry, rollout_id, actor)


@router.post("/rollouts/{rollout_id}/rollback")
def roll_back(rollout_id: RolloutId, registry: RegistryDep, actor: ActorDep) -> RolloutRecord:
    """An active rollout: back to the baseline now. The endpoint's newest promoted one: its
    baseline at 100% and the production alias back (undo a bad promotion)."""
    return steering.rollback(registry, rollout_id, actor)


@router.get("/policies")
def list_policies(registry: RegistryDep) -> list[PolicyRecord]:
    return registry.policies.all()


@router.get("/policies/{model}")
def get_policy(model: str, registry: RegistryDep) -> PolicyRecord:
    return registry.policies.get(model)


@router.put("/policies/{model}")
def put_policy(
    model: str, body: PolicyRequest, registry: RegistryDep, actor: ActorDep
) -> PolicyRecord:
    strategy = parse_strategy(body.strategy)
    plan = parse_plan(strategy, body.plan).model_dump(mode="json")
    gate = offline_gate(body.offline_metric, body.max_offline_drop, body.min_offline)
    endpoint = body.endpoint or model
    return registry.policies.put(
        model, endpoint, body.trigger, plan, actor, strategy=strategy.value, gate=gate
    )


@router.delete("/policies/{model}", status_code=204)
def remove_policy(model: str, registry: RegistryDep, actor: ActorDep) -> None:
    registry.policies.remove(model, actor)
