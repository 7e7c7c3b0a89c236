"""Rollouts as records: persisted at every transition, so a restart resumes where it was.

A rollout moves an endpoint from its baseline variant to a candidate. Its plan (steps,
interval, gates) is stored as given; the control plane interprets it. Status, step, weight
and failed checks change only through :meth:`Rollouts.transition`, each change one event in
the same transaction, so the audit log tells the rollout's whole story.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.errors import Conflict, InvalidInput, NotFound
from ferryman.names import validate_name
from ferryman.registry.audit import append_event
from ferryman.registry.database import Database
from ferryman.registry.deployments import VariantSpec
from ferryman.registry.records import Record
from ferryman.registry.tables import RolloutRow


class RolloutStatus(StrEnum):
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def is_final(self) -> bool:
        return self in {RolloutStatus.PROMOTED, RolloutStatus.ROLLED_BACK, RolloutStatus.ABORTED}


class RolloutRecord(Record):
    id: int
    endpoint: str
    model: str
    strategy: str
    baseline: VariantSpec
    candidate: VariantSpec
    plan: dict[str, Any]
    status: RolloutStatus
    step_index: int
    failed_checks: int
    weight: int
    reason: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class Rollouts:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def create(
        self,
        endpoint: str,
        baseline: VariantSpec,
        candidate: VariantSpec,
        plan: dict[str, Any],
        actor: str,
    ) -> RolloutRecord:
        """Start a canary of ``candidate`` on ``endpoint``; one active rollout per endpoint."""
        validate_name(endpoint, "endpoint name")
        if baseline.name == candidate.name:
            raise InvalidInput(f"the candidate {candidate.name} is already the baseline")

        def work(session: Session) -> RolloutRecord:
            change = (baseline, candidate)
            return insert_rollout(session, self._clock(), endpoint, change, plan=plan, actor=actor)

        return self._db.write(work)

    def transition(self, rollout_id: int, actor: str, action: str, **changes: Any) -> RolloutRecord:
        """Apply ``changes`` (status, step_index, failed_checks, weight, reason) and log it."""
        allowed = {"status", "step_index", "failed_checks", "weight", "reason"}
        if not changes.keys() <= allowed:
            raise InvalidInput(f"a rollout transition may change only {sorted(allowed)}")

        def work(session: Session) -> RolloutRecord:
            row = _get(session, rollout_id, for_update=True)
            if RolloutStatus(row.status).is_final:
                raise Conflict(f"rollout {rollout_id} already ended ({row.status})")
            now = self._clock()
            for key, value in changes.items():
                setattr(row, key, value.value if isinstance(value, StrEnum) else value)
            row.updated_at = now
            if RolloutStatus(row.status).is_final:
                row.finished_at = now
            subject = ("rollout", f"{row.endpoint}#{row.id}", row.model_name)
            details = {key: str(value) for key, value in changes.items()}
            append_event(session, now, actor, f"rollout.{action}", subject, details=details)
            return _record(row)

        return self._db.write(work)

    def get(self, rollout_id: int) -> RolloutRecord:
        with self._db.reading() as session:
            return _record(_get(session, rollout_id))

    def list(self, endpoint: str | None = None, active_only: bool = False) -> list[RolloutRecord]:
        with self._db.reading() as session:
            query = select(RolloutRow).order_by(RolloutRow.id)
            if endpoint is not None:
                query = query.where(RolloutRow.endpoint == validate_name(endpoint, "endpoint"))
            if active_only:
                query = query.where(RolloutRow.finished_at.is_(None))
            return [_record(row) for row in session.scalars(query)]


def insert_rollout(
    session: Session,
    now: datetime,
    endpoint: str,
    change: tuple[VariantSpec, VariantSpec],
    *,
    plan: dict[str, Any],
    actor: str,
) -> RolloutRecord:
    """Add a rollout from ``change`` = (baseline, candidate) in the caller's transaction."""
    baseline, candidate = change
    active = active_rollout(session, endpoint)
    if active is not None:
        raise Conflict(f"endpoint {endpoint!r} already has rollout {active.id} in progress")
    row = RolloutRow(
        endpoint=endpoint, model_name=candidate.model, strategy="canary",
        baseline=baseline.model_dump(mode="json"), candidate=candidate.model_dump(mode="json"),
        plan=plan, status=RolloutStatus.PROGRESSING.value, step_index=0, failed_checks=0,
        weight=0, reason="created", created_by=actor, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    details = {"from": baseline.name, "to": candidate.name, "plan": plan}
    subject = ("rollout", f"{endpoint}#{row.id}", candidate.model)
    append_event(session, now, actor, "rollout.created", subject, details=details)
    return _record(row)


def active_rollout(session: Session, endpoint: str) -> RolloutRow | None:
    return session.scalar(
        select(RolloutRow).where(RolloutRow.endpoint == endpoint, RolloutRow.finished_at.is_(None))
    )


def _get(session: Session, rollout_id: int, for_update: bool = False) -> RolloutRow:
    query = select(RolloutRow).where(RolloutRow.id == rollout_id)
    row = session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise NotFound(f"rollout {rollout_id} does not exist (ferryman rollout status)")
    return row


def _record(row: RolloutRow) -> RolloutRecord:
    return RolloutRecord(
        id=row.id,
        endpoint=row.endpoint,
        model=row.model_name,
        strategy=row.strategy,
        baseline=VariantSpec.model_validate(row.baseline),
        candidate=VariantSpec.model_validate(row.candidate),
        plan=row.plan,
        status=RolloutStatus(row.status),
        step_index=row.step_index,
        failed_checks=row.failed_checks,
        weight=row.weight,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )
