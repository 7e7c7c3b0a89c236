"""The audit log: who did what to which object, when. Append-only by database trigger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.registry.records import EventRecord
from ferryman.registry.tables import EventRow


def append_event(
    session: Session,
    at: datetime,
    actor: str,
    action: str,
    subject: tuple[str, str, str | None],
    *,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one event in the caller's transaction: it commits or vanishes with the change.

    ``subject`` is (object type, object key, model name), e.g. ("version", "digits/3", "digits").
    """
    object_type, object_key, model_name = subject
    session.add(
        EventRow(
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_key=object_key,
            model_name=model_name,
            details=details or {},
        )
    )


def query_events(
    session: Session,
    model: str | None = None,
    limit: int = 50,
    after_id: int | None = None,
    *,
    action: str | None = None,
    since: datetime | None = None,
) -> list[EventRecord]:
    """The newest ``limit`` events (oldest first), or those after ``after_id`` when tailing."""
    query = select(EventRow)
    if model is not None:
        query = query.where(EventRow.model_name == model)
    if action is not None:
        query = query.where(EventRow.action == action)
    if since is not None:
        query = query.where(EventRow.at >= since)
    if after_id is not None:
        rows = session.scalars(
            query.where(EventRow.id > after_id).order_by(EventRow.id).limit(limit)
        )
        ordered = list(rows)
    else:
        ordered = list(session.scalars(query.order_by(EventRow.id.desc()).limit(limit)))[::-1]
    return [event_record(row) for row in ordered]


def event_record(row: EventRow) -> EventRecord:
    return EventRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_key=row.object_key,
        model=row.model_name,
        details=row.details,
    )
