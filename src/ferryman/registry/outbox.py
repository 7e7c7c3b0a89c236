"""The webhook outbox: every delivery is a row until it is delivered or given up.

The sender adds a delivery here before it queues it, counts each failed attempt, and
settles it (deletes the row) once a receiver took it or the last attempt failed. What a
killed control plane leaves here is sent again by the next one, with the same delivery id,
so a receiver gets each event at least once and drops repeats by that id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ferryman.registry.database import Database
from ferryman.registry.records import Record
from ferryman.registry.tables import WebhookOutboxRow


class OutboxEntry(Record):
    """One delivery not yet settled: its id, the webhook's name, the event and its body."""

    id: str
    webhook: str
    event: str
    body: str
    attempts: int = 0


class WebhookOutbox:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def add(self, entry: OutboxEntry) -> None:
        def work(session: Session) -> None:
            session.add(WebhookOutboxRow(**entry.model_dump(), created_at=self._clock()))

        self._db.write(work)

    def attempted(self, delivery_id: str, attempts: int) -> None:
        """Record that ``attempts`` attempts of the delivery have failed so far."""
        statement = (
            update(WebhookOutboxRow)
            .where(WebhookOutboxRow.id == delivery_id)
            .values(attempts=attempts)
        )
        self._db.write(lambda session: session.execute(statement))

    def settle(self, delivery_id: str) -> None:
        """Delivered, or given up: the delivery leaves the outbox."""
        statement = delete(WebhookOutboxRow).where(WebhookOutboxRow.id == delivery_id)
        self._db.write(lambda session: session.execute(statement))

    def pending(self) -> list[OutboxEntry]:
        """Every unsettled delivery, oldest first."""
        with self._db.reading() as session:
            rows = session.scalars(
                select(WebhookOutboxRow).order_by(WebhookOutboxRow.created_at)
            ).all()
            return [
                OutboxEntry(id=r.id, webhook=r.webhook, event=r.event, body=r.body,
                            attempts=r.attempts)
                for r in rows
            ]  # fmt: skip
