"""Policies: "a new version of MODEL is rolled out to ENDPOINT by this strategy and plan".

A policy names its trigger — every registration (``registered``) or a move of an alias
(``alias:candidate``) — and keeps a cursor into the audit log: the id of the last event it
has acted on. The control plane asks :meth:`Policies.pending` for versions that triggered
since the cursor and advances it in the same transaction as the rollout it creates, so a
restart neither misses a trigger nor acts on one twice.

A policy may also hold a version back before any traffic moves: its :class:`OfflineGate`
asks for an offline metric recorded with the version (``accuracy``) at least
``min_offline``, and/or at most ``max_offline_drop`` below production's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ferryman.errors import InvalidInput, NotFound
from ferryman.names import validate_name
from ferryman.registry.audit import append_event
from ferryman.registry.database import Database
from ferryman.registry.deployments import VariantSpec
from ferryman.registry.records import Record
from ferryman.registry.rollouts import RolloutRecord, active_rollout, insert_rollout
from ferryman.registry.tables import EventRow, PolicyRow

_TRIGGER = re.compile(r"registered|alias:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class OfflineGate(BaseModel):
    """What a version's offline metric (higher is better: accuracy, f1, auc) must show before
    a policy rolls it out; build one with :func:`offline_gate`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offline_metric: str = Field(min_length=1, max_length=64, description="e.g. accuracy.")
    max_offline_drop: float | None = Field(
        default=None, ge=0, description="Most below production's value (0.02: two points)."
    )
    min_offline: float | None = Field(default=None, description="Least value, absolute.")

    def held(
        self, candidate: tuple[int, dict[str, float]], production: tuple[int, dict[str, float]]
    ) -> str | None:
        """Why the candidate (version, metrics) may not roll out next to ``production``'s,
        or None when it may."""
        name, (number, metrics) = self.offline_metric, candidate
        value = metrics.get(name)
        if value is None:
            return (
                f"v{number} has no offline metric {name!r} for the policy's offline gate "
                f"(record it at registration: --metric {name}=VALUE)"
            )
        if self.min_offline is not None and value < self.min_offline:
            return f"offline {name} of v{number} is {value:.4g} < min_offline {self.min_offline:g}"
        drop = self.max_offline_drop
        if drop is None:
            return None
        base = production[1].get(name)
        if base is None:
            return f"production v{production[0]} has no offline metric {name!r} to compare with"
        if value < base - drop:
            return (
                f"offline {name} of v{number} is {value:.4g}, more than max_offline_drop "
                f"{drop:g} below production v{production[0]}'s {base:.4g}"
            )
        return None


def offline_gate(
    metric: str | None, max_drop: float | None = None, min_value: float | None = None
) -> OfflineGate | None:
    """The offline gate these policy fields ask for (None: no gate), or a clear 400."""
    if metric is None:
        if max_drop is not None or min_value is not None:
            raise InvalidInput(
                "max_offline_drop and min_offline bound an offline metric: name it too "
                "(offline_metric, e.g. accuracy; CLI --offline-metric)"
            )
        return None
    if max_drop is None and min_value is None:
        raise InvalidInput(
            f"offline_metric {metric[:64]!r} needs a bound: max_offline_drop (e.g. 0.02 below "
            "production's) and/or min_offline (e.g. 0.9)"
        )
    if not 0 < len(metric) <= 64:
        raise InvalidInput(f"offline_metric {metric[:64]!r} must be 1 to 64 characters")
    if max_drop is not None and not 0 <= max_drop <= 1e9:
        raise InvalidInput(f"max_offline_drop {max_drop} must be 0 or more (e.g. 0.02)")
    return OfflineGate(offline_metric=metric, max_offline_drop=max_drop, min_offline=min_value)


class PolicyRecord(Record):
    model: str
    endpoint: str
    trigger: str
    strategy: str
    plan: dict[str, Any]
    offline_gate: OfflineGate | None = None
    last_event_id: int
    created_by: str
    updated_at: datetime


class Trigger(Record):
    """A version that a policy's trigger fired for, and the event that fired it."""

    policy: PolicyRecord
    version: int
    event_id: int


class Policies:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def put(
        self,
        model: str,
        endpoint: str,
        trigger: str,
        plan: dict[str, Any],
        actor: str,
        *,
        strategy: str = "canary",
        gate: OfflineGate | None = None,
    ) -> PolicyRecord:
        """Set the policy of ``model``; it acts on what happens from now on, not before.

        The plan is stored as given: the control plane validates it for its ``strategy``.
        ``gate`` holds back versions whose offline metric falls short.
        """
        validate_name(model, "model name")
        validate_name(endpoint, "endpoint name")
        if _TRIGGER.fullmatch(trigger) is None:
            raise InvalidInput(f"trigger {trigger!r} is not 'registered' or 'alias:NAME'")

        def work(session: Session) -> PolicyRecord:
            now = self._clock()
            newest_event = session.scalar(select(func.max(EventRow.id))) or 0
            row = session.scalar(select(PolicyRow).where(PolicyRow.model_name == model))
            if row is None:
                row = PolicyRow(model_name=model, created_by=actor)
                session.add(row)
            row.endpoint, row.trigger, row.plan, row.updated_at = endpoint, trigger, plan, now
            row.strategy, row.removed_at, row.last_event_id = strategy, None, newest_event
            row.offline_gate = None if gate is None else gate.model_dump(mode="json")
            details = {"endpoint": endpoint, "trigger": trigger, "strategy": strategy, "plan": plan,
                       "offline_gate": row.offline_gate}  # fmt: skip
            append_event(
                session, now, actor, "policy.set", ("policy", model, model), details=details
            )
            return _record(row)

        return self._db.write(work)

    def get(self, model: str) -> PolicyRecord:
        with self._db.reading() as session:
            return _record(_active(session, model))

    def all(self) -> list[PolicyRecord]:
        with self._db.reading() as session:
            query = select(PolicyRow).where(PolicyRow.removed_at.is_(None))
            return [_record(row) for row in session.scalars(query.order_by(PolicyRow.model_name))]

    def remove(self, model: str, actor: str) -> None:
        def work(session: Session) -> None:
            row = _active(session, model)
            row.removed_at = now = self._clock()
            append_event(session, now, actor, "policy.removed", ("policy", model, model))

        self._db.write(work)

    def pending(self) -> list[Trigger]:
        """Versions whose registration (or alias move) fired a policy since its cursor."""
        found = []
        with self._db.reading() as session:
            for row in session.scalars(select(PolicyRow).where(PolicyRow.removed_at.is_(None))):
                events = session.scalars(
                    select(EventRow)
                    .where(EventRow.model_name == row.model_name, EventRow.id > row.last_event_id)
                    .order_by(EventRow.id)
                )
                for event in events:
                    version = _fired(row.trigger, event)
                    if version is not None:
                        found.append(
                            Trigger(policy=_record(row), version=version, event_id=event.id)
                        )
        return found

    def fire(
        self,
        trigger: Trigger,
        change: tuple[VariantSpec, VariantSpec] | None,
        actor: str,
        skip_reason: str = "",
        state: dict[str, Any] | None = None,
    ) -> RolloutRecord | None:
        """Act on ``trigger``: start the rollout of ``change`` (baseline, candidate), or skip
        it (``change`` None, for ``skip_reason``) and move the cursor past it — in one
        transaction. ``state`` is the new rollout's initial strategy state.

        While the endpoint has a rollout in progress nothing happens and the cursor stays:
        the trigger fires again once that rollout has ended.
        """
        policy = trigger.policy

        def work(session: Session) -> RolloutRecord | None:
            if active_rollout(session, policy.endpoint) is not None:
                return None
            row = _active(session, policy.model)
            row.last_event_id = max(row.last_event_id, trigger.event_id)
            now = self._clock()
            if change is None:
                subject = ("policy", policy.model, policy.model)
                details = {
                    "version": trigger.version,
                    "endpoint": policy.endpoint,
                    "reason": skip_reason,
                }
                append_event(session, now, actor, "policy.skipped", subject, details=details)
                return None
            return insert_rollout(
                session, now, policy.endpoint, change,
                plan=policy.plan, actor=actor, strategy=policy.strategy, state=state,
            )  # fmt: skip

        return self._db.write(work)


def _fired(trigger: str, event: EventRow) -> int | None:
    if trigger == "registered" and event.action == "version.registered":
        return int(event.object_key.rsplit("/", 1)[1])
    alias = trigger.removeprefix("alias:")
    if event.action == "alias.set" and event.object_key.endswith(f"@{alias}"):
        to = event.details.get("to")
        return int(to) if isinstance(to, int) else None
    return None


def _active(session: Session, model: str) -> PolicyRow:
    row = session.scalar(select(PolicyRow).where(PolicyRow.model_name == model))
    if row is None or row.removed_at is not None:
        raise NotFound(f"model {model!r} has no policy (ferryman policy set {model} …)")
    return row


def _record(row: PolicyRow) -> PolicyRecord:
    return PolicyRecord(
        model=row.model_name,
        endpoint=row.endpoint,
        trigger=row.trigger,
        strategy=row.strategy or "canary",
        plan=row.plan,
        offline_gate=None if row.offline_gate is None else OfflineGate(**row.offline_gate),
        last_event_id=row.last_event_id,
        created_by=row.created_by,
        updated_at=row.updated_at,
    )
