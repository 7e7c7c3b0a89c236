"""Signed deliveries received from other systems, remembered for their signature's window.

A signature proves who sent a delivery, not that it is new: the same bytes and headers,
posted again within the timestamp tolerance, verify again. :meth:`Deliveries.remember`
records each delivery id once, in the registry (so a restarted control plane still knows
it), and refuses a second one with 409 until ``keep_s`` has passed; older ids are pruned in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from ferryman.errors import Conflict
from ferryman.registry.database import Database
from ferryman.registry.tables import DeliveryRow


class Deliveries:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def remember(self, source: str, delivery_id: str, keep_s: float) -> None:
        """Record ``delivery_id`` from ``source``; 409 if it was received within ``keep_s``."""
        now = self._clock()

        def work(session: Session) -> None:
            session.execute(
                delete(DeliveryRow).where(DeliveryRow.received_at < now - timedelta(seconds=keep_s))
            )
            seen = session.get(DeliveryRow, (source, delivery_id))
            if seen is not None:
                raise Conflict(
                    f"{source} delivery {delivery_id!r} was already received at "
                    f"{seen.received_at.isoformat(timespec='seconds')}; a delivery is acted on "
                    "once, so this replay is refused (send a new delivery to act again)"
                )
            session.add(DeliveryRow(source=source, delivery_id=delivery_id, received_at=now))

        self._db.write(work)

    def forget(self, source: str, delivery_id: str) -> None:
        """Drop ``delivery_id`` again: its handling failed, so the sender's retry may come in."""

        def work(session: Session) -> None:
            session.execute(
                delete(DeliveryRow).where(
                    DeliveryRow.source == source, DeliveryRow.delivery_id == delivery_id
                )
            )

        self._db.write(work)
