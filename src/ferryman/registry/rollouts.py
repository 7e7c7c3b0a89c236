"""Rollouts as records: persisted at every transition, so a restart resumes where it was.

A rollout moves an endpoint from its baseline variant to a candidate by a strategy (canary,
blue_green, ab_test, shadow). Its plan is stored as given and its strategy's own state (a
phase, a test's result) beside it; the control plane interprets both. Status, step, weight,
failed checks and state change only through :meth:`Rollouts.transition`, each change one
event in the same transaction — with the figures that led to it — so the audit log tells
the rollout's whole story (:meth:`Rollouts.timeline`).
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
from ferryman.registry.audit import append_event, event_record
from ferryman.registry.database import Database
from ferryman.registry.deployments import VariantSpec
from ferryman.registry.records import EventRecord, Record
from ferryman.registry.tables import EventRow, RolloutRow


class RolloutStatus(StrEnum):
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    COMPLETED = "completed"  # ended with a report and no change: an A/B test, a shadow

    @property
    def is_final(self) -> bool:
        return self not in {RolloutStatus.PROGRESSING, RolloutStatus.PAUSED}


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
    state: dict[str, Any]
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
        change: tuple[VariantSpec, VariantSpec],
        plan: dict[str, Any],
        actor: str,
        *,
        strategy: str = "canary",
        state: dict[str, Any] | None = None,
    ) -> RolloutRecord:
        """Start moving ``endpoint`` from ``change`` = (baseline, candidate) by ``strategy``
        (with its initial ``state``); one active rollout per endpoint."""
        validate_name(endpoint, "endpoint name")
        baseline, candidate = change
        if baseline.name == candidate.name:
            raise InvalidInput(f"the candidate {candidate.name} is already the baseline")

        def work(session: Session) -> RolloutRecord:
            return insert_rollout(
                session, self._clock(), endpoint, change,
                plan=plan, actor=actor, strategy=strategy, state=state,
            )  # fmt: skip

        return self._db.write(work)

    def transition(
        self,
        rollout_id: int,
        actor: str,
        action: str,
        details: dict[str, Any] | None = None,
        **changes: Any,
    ) -> RolloutRecord:
        """Apply ``changes`` (status, step_index, failed_checks, weight, reason, state) and log
        them as event ``rollout.<action>`` with ``details`` (the figures behind the change)."""

        def work(session: Session) -> RolloutRecord:
            now = self._clock()
            return apply_transition(session, now, (rollout_id, actor, action), details, changes)

        return self._db.write(work)

    def timeline(self, rollout_id: int) -> list[EventRecord]:
        """The rollout's events, oldest first: created, every step, hold and its end."""
        with self._db.reading() as session:
            row = _get(session, rollout_id)
            query = (
                select(EventRow)
                .where(EventRow.object_type == "rollout", EventRow.object_key == _key(row))
                .order_by(EventRow.id)
            )
            return [event_record(event) for event in session.scalars(query)]

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


def apply_transition(
    session: Session,
    now: datetime,
    move: tuple[int, str, str],
    details: dict[str, Any] | None,
    changes: dict[str, Any],
) -> RolloutRecord:
    """:meth:`Rollouts.transition` of ``move`` = (rollout id, actor, action) in the caller's
    transaction; refused (409) once the rollout has ended."""
    rollout_id, actor, action = move
    allowed = {"status", "step_index", "failed_checks", "weight", "reason", "state"}
    if not changes.keys() <= allowed:
        raise InvalidInput(f"a rollout transition may change only {sorted(allowed)}")
    row = _get(session, rollout_id, for_update=True)
    if RolloutStatus(row.status).is_final:
        raise Conflict(f"rollout {rollout_id} already ended ({row.status})")
    for key, value in changes.items():
        setattr(row, key, value.value if isinstance(value, StrEnum) else value)
    row.updated_at = now
    if RolloutStatus(row.status).is_final:
        row.finished_at = now
    _log(session, row, now, (actor, action), {**changes, **(details or {})})
    return _record(row)


def revert_in(session: Session, now: datetime, who: tuple[int, str], reason: str) -> RolloutRecord:
    """Mark the endpoint's newest rollout, promoted, as rolled back after the fact (its
    baseline serves again), in the caller's transaction (:meth:`Registry.undo_promotion`);
    ``who`` = (rollout id, actor). Refused for any other rollout: a newer one has moved on."""
    rollout_id, actor = who
    row = _get(session, rollout_id, for_update=True)
    newest = session.scalar(
        select(RolloutRow.id)
        .where(RolloutRow.endpoint == row.endpoint)
        .order_by(RolloutRow.id.desc())
        .limit(1)
    )
    if row.status != RolloutStatus.PROMOTED.value or newest != row.id:
        raise Conflict(
            f"rollout {rollout_id} is {row.status} and rollout {newest} is the newest on "
            f"{row.endpoint!r}; only the newest rollout, once promoted, can be rolled back"
        )
    row.status, row.reason, row.weight = RolloutStatus.ROLLED_BACK.value, reason, 0
    row.updated_at = now
    changes = {"status": row.status, "weight": 0, "reason": reason}
    _log(session, row, now, (actor, "rolled_back"), {**changes, "after_promotion": True})
    return _record(row)


def insert_rollout(
    session: Session,
    now: datetime,
    endpoint: str,
    change: tuple[VariantSpec, VariantSpec],
    *,
    plan: dict[str, Any],
    actor: str,
    strategy: str = "canary",
    state: dict[str, Any] | None = None,
) -> RolloutRecord:
    """Add a rollout from ``change`` = (baseline, candidate) in the caller's transaction."""
    baseline, candidate = change
    active = active_rollout(session, endpoint)
    if active is not None:
        raise Conflict(f"endpoint {endpoint!r} already has rollout {active.id} in progress")
    row = RolloutRow(
        endpoint=endpoint, model_name=candidate.model, strategy=strategy,
        baseline=baseline.model_dump(mode="json"), candidate=candidate.model_dump(mode="json"),
        plan=plan, status=RolloutStatus.PROGRESSING.value, step_index=0, failed_checks=0,
        weight=0, reason="created", state=state or {}, created_by=actor, created_at=now,
        updated_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    details = {"strategy": strategy, "from": baseline.name, "to": candidate.name, "plan": plan}
    _log(session, row, now, (actor, "created"), details)
    return _record(row)


def active_rollout(session: Session, endpoint: str) -> RolloutRow | None:
    return session.scalar(
        select(RolloutRow).where(RolloutRow.endpoint == endpoint, RolloutRow.finished_at.is_(None))
    )


def rollout_in(session: Session, rollout_id: int) -> RolloutRecord:
    """The rollout as the caller's transaction sees it."""
    return _record(_get(session, rollout_id))


def _key(row: RolloutRow) -> str:
    return f"{row.endpoint}#{row.id}"


def _log(
    session: Session, row: RolloutRow, now: datetime, move: tuple[str, str], details: dict[str, Any]
) -> None:
    """Append the event of ``move`` = (actor, action) on ``row``."""
    actor, action = move
    plain = {key: value.value if isinstance(value, StrEnum) else value
             for key, value in details.items()}  # fmt: skip
    subject = ("rollout", _key(row), row.model_name)
    append_event(session, now, actor, f"rollout.{action}", subject, details=plain)


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
        state=row.state or {},
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )
