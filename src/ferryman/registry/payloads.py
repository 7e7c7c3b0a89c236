"""The payload log, as kept by the registry.

The control plane collects answered requests from each replica's payload log, a page at a
time (:meth:`Payloads.keep`, idempotent: a record is identified by its replica instance and
sequence) and keeps them for a bounded time and number (:meth:`Payloads.prune`). Ground
truth arrives later as feedback for a request id (:meth:`Payloads.give_feedback`, kept by
:mod:`ferryman.registry.feedback`); it is joined to predictions when read, so a label may
arrive before or after its request is collected. Reading is by endpoint with filters
(:meth:`Payloads.search`), and the pairs of (prediction, label) per variant feed the
quality figures (:meth:`Payloads.labelled`).

A language model's completion is a record of kind ``completion`` whose request id is the
completion's own (the ``id`` of the OpenAI answer); its feedback is a rating, ``up`` or
``down``, and the share of ``up`` per variant feeds the thumbs-up gate
(:meth:`Payloads.rated`).

Nothing the replicas' logs leave out is silent: each collected page's totals (requests
answered, sampled out at the declared rate, dropped unread) are kept per replica instance
with the page (:meth:`Payloads.keep`) and summed per variant beside the quality figures
(:meth:`Payloads.tallies`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CursorResult, Delete, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ferryman.errors import InvalidInput
from ferryman.names import validate_name
from ferryman.protocol.openai import COMPLETION_KIND, RATINGS
from ferryman.registry.database import Database
from ferryman.registry.feedback import MAX_PENDING, Feedback, FeedbackResult, Feedbacks
from ferryman.registry.records import Record
from ferryman.registry.tables import FeedbackRow, PayloadRow, PayloadTallyRow

PAYLOADS = cast(Table, PayloadRow.__table__)
MAX_SEARCH = 1_000
MAX_LABELLED = 20_000
COMPLETION = COMPLETION_KIND
"""The kind of a payload record that is a language model's completion (rated up or down)."""


class CollectedPayload(BaseModel):
    """One record of a replica's payload log, as the replica serves it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    seq: int = Field(ge=1)
    request_id: str = Field(min_length=1, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=64)
    time: float
    status: int = Field(ge=100, le=599)
    latency_ms: float = Field(ge=0)
    predictions: list[str] | None = None
    summaries: dict[str, list[float]] | None = None
    inputs: dict[str, Any] | None = None
    kind: str | None = Field(default=None, max_length=16)
    """``completion`` for a language model's answer; None for a tensor answer."""
    pinned: bool = False
    """The client named the version (``/versions/N``); a replica before 0017 never says so."""


class PayloadTotals(BaseModel):
    """A replica's payload-log totals since it started, as a collected page carries them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    answered: int = Field(default=0, ge=0)
    sampled_out: int = Field(default=0, ge=0)
    dropped: int = Field(default=0, ge=0)


@dataclass(frozen=True)
class CollectedPage:
    """One page of a replica instance's payload log, as the collector read it."""

    instance: str
    records: Sequence[CollectedPayload]
    missed: int = 0
    """Records after the collector's cursor that were gone before it read them (dropped)."""
    sample_rate: float = 1.0
    totals: PayloadTotals = field(default_factory=PayloadTotals)


class PayloadTally(Record):
    """What a variant's payload logs did with its requests (summed over its replicas).

    ``logged`` = ``answered`` - ``sampled_out``; of those, ``dropped`` were overwritten before
    collection. ``sample_rate`` is the lowest rate any of its replicas declared.
    """

    variant: str
    sample_rate: float
    answered: int
    logged: int
    sampled_out: int
    dropped: int


class PayloadRecord(Record):
    request_id: str
    correlation_id: str | None
    time: datetime
    endpoint: str
    model: str
    version: int
    variant: str
    status: int
    latency_ms: float
    predictions: list[str] | None
    labels: list[str] | None
    inputs: dict[str, Any] | None
    kind: str | None = None
    pinned: bool = False


class Labelled(Record):
    """A variant's labelled rows: what it predicted and what was true, newest first."""

    variant: str
    version: int
    predicted: list[str]
    actual: list[str]


class Rated(Record):
    """A variant's rated completions: how many, and how many were thumbs up."""

    variant: str
    version: int
    rated: int
    up: int

    @property
    def down(self) -> int:
        return self.rated - self.up

    @property
    def up_rate(self) -> float | None:
        return self.up / self.rated if self.rated else None


class Payloads:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock
        self._feedback = Feedbacks(database, clock)

    def add(
        self,
        endpoint: str,
        variant: str,
        model_version: tuple[str, int],
        instance: str,
        records: Sequence[CollectedPayload],
        *,
        missed: int = 0,
    ) -> int:
        """Keep ``records`` of one replica ``instance``; those kept already are skipped.

        ``missed`` records of the instance were gone before the collector could read them:
        counted as dropped in its tally, in the same transaction as the records. (The
        collector keeps whole pages with :meth:`keep`.)
        """
        rows = _rows(endpoint, variant, model_version, instance, records)

        def work(session: Session) -> None:
            self._insert(session, rows)
            if missed:
                row = _tally_row(session, endpoint, variant, instance)
                row.dropped += missed
                row.updated_at = self._clock()

        if rows or missed:
            self._db.write(work)
        return len(rows)

    def keep(
        self, endpoint: str, variant: str, model_version: tuple[str, int], page: CollectedPage
    ) -> int:
        """Keep one collected ``page`` in one transaction: its records (those kept already are
        skipped), the records it says were gone before collection (as dropped) and its
        totals. A collector that stops mid-page leaves all of it or none, so the counts stay
        exact and what it did not keep is read again (it resumes at :meth:`last_seq`)."""
        rows = _rows(endpoint, variant, model_version, page.instance, page.records)

        def work(session: Session) -> None:
            self._insert(session, rows)
            row = _tally_row(session, endpoint, variant, page.instance)
            row.dropped += page.missed
            row.sample_rate = page.sample_rate
            row.answered, row.sampled_out = page.totals.answered, page.totals.sampled_out
            row.updated_at = self._clock()

        self._db.write(work)
        return len(rows)

    def _insert(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """One executemany of payload rows through the SQL core (the ORM's bulk path spent
        a third of the collector's time on bookkeeping these rows do not need)."""
        if not rows:
            return
        insert = pg_insert if self._db.dialect == "postgresql" else sqlite_insert
        statement = insert(PAYLOADS).on_conflict_do_nothing(index_elements=["instance", "seq"])
        session.connection().execute(statement, rows)

    def last_seq(self, instance: str) -> int:
        """The highest sequence kept of a replica ``instance`` (0: none), where a collector
        that has no cursor for it resumes."""
        query = select(func.max(PayloadRow.seq)).where(PayloadRow.instance == instance[:32])
        with self._db.reading() as session:
            return int(session.scalar(query) or 0)

    def tallies(self, endpoint: str) -> list[PayloadTally]:
        """Per variant of ``endpoint``: requests answered, logged, sampled out and dropped."""
        query = (
            select(PayloadTallyRow.variant, func.min(PayloadTallyRow.sample_rate),
                   func.sum(PayloadTallyRow.answered), func.sum(PayloadTallyRow.sampled_out),
                   func.sum(PayloadTallyRow.dropped))
            .where(PayloadTallyRow.endpoint == endpoint)
            .group_by(PayloadTallyRow.variant)
            .order_by(PayloadTallyRow.variant)
        )  # fmt: skip
        with self._db.reading() as session:
            return [
                _tally(variant, float(rate), int(answered), int(sampled_out), int(dropped))
                for variant, rate, answered, sampled_out, dropped in session.execute(query)
            ]

    def give_feedback(
        self,
        items: Iterable[Feedback],
        actor: str,
        classes_of: Callable[[str, int], Sequence[str]] = lambda model, version: (),
        max_pending: int = MAX_PENDING,
    ) -> list[FeedbackResult]:
        """Store labels of collected (or not yet collected) answers: see
        :meth:`Feedbacks.give <ferryman.registry.feedback.Feedbacks.give>`."""
        return self._feedback.give(items, actor, classes_of, max_pending)

    def search(
        self,
        endpoint: str,
        *,
        version: int | None = None,
        variant: str | None = None,
        status: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[PayloadRecord]:
        """Collected requests of ``endpoint``, newest first, with their labels if any."""
        validate_name(endpoint, "endpoint name")
        if not 1 <= limit <= MAX_SEARCH:
            raise InvalidInput(f"limit {limit} must be in 1..{MAX_SEARCH}")
        query = (
            select(PayloadRow, FeedbackRow.labels)
            .outerjoin(FeedbackRow, FeedbackRow.request_id == PayloadRow.request_id)
            .where(PayloadRow.endpoint == endpoint)
        )
        for column, value in (
            (PayloadRow.version, version), (PayloadRow.variant, variant),
            (PayloadRow.status, status),
        ):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(PayloadRow.at >= since)
        if until is not None:
            query = query.where(PayloadRow.at < until)
        query = query.order_by(PayloadRow.id.desc()).limit(limit)
        with self._db.reading() as session:
            return [_record(row, labels) for row, labels in session.execute(query)]

    def labelled(
        self, endpoint: str, variant: str, *, since: datetime | None = None, limit: int = 5_000
    ) -> Labelled:
        """The newest ``limit`` labelled rows a variant answered (since a time, if given),
        but those pinned to the version (their client chose the variant: no sample of it).

        A label counts once: where records share a request id (ids clients chose, before
        request ids were the replica's own), only the newest is judged.
        """
        query = (
            select(
                PayloadRow.request_id,
                PayloadRow.version,
                PayloadRow.predictions,
                FeedbackRow.labels,
            )
            .join(FeedbackRow, FeedbackRow.request_id == PayloadRow.request_id)
            .where(PayloadRow.endpoint == endpoint, PayloadRow.variant == variant)
            .where(PayloadRow.predictions.is_not(None), PayloadRow.pinned.is_(False))
            .order_by(PayloadRow.id.desc())
            .limit(min(limit, MAX_LABELLED))
        )
        if since is not None:
            query = query.where(PayloadRow.at >= since)
        predicted: list[str] = []
        actual: list[str] = []
        version = 0
        seen: set[str] = set()
        with self._db.reading() as session:
            for request_id, row_version, predictions, labels in session.execute(query):
                if request_id in seen:
                    continue
                seen.add(request_id)
                version = version or row_version
                if predictions is not None and len(predictions) == len(labels):
                    predicted.extend(predictions)
                    actual.extend(labels)
        return Labelled(variant=variant, version=version, predicted=predicted, actual=actual)

    def rated(
        self, endpoint: str, variant: str, *, since: datetime | None = None, limit: int = 5_000
    ) -> Rated:
        """The newest ``limit`` rated completions a variant answered (none pinned), and how
        many were up.

        Only ``up`` and ``down`` count: a label kept for an id before its completion was
        collected was checked against nothing, and is no rating if it is something else.
        """
        query = (
            select(PayloadRow.request_id, PayloadRow.version, FeedbackRow.labels)
            .join(FeedbackRow, FeedbackRow.request_id == PayloadRow.request_id)
            .where(PayloadRow.endpoint == endpoint, PayloadRow.variant == variant)
            .where(PayloadRow.kind == COMPLETION, PayloadRow.pinned.is_(False))
            .order_by(PayloadRow.id.desc())
            .limit(min(limit, MAX_LABELLED))
        )
        if since is not None:
            query = query.where(PayloadRow.at >= since)
        rated = up = version = 0
        with self._db.reading() as session:
            for _, row_version, labels in session.execute(query):
                version = version or row_version
                if len(labels) == 1 and labels[0] in RATINGS:
                    rated += 1
                    up += labels == ["up"]
        return Rated(variant=variant, version=version, rated=rated, up=up)

    def summaries(self, endpoint: str, variant: str, limit: int = 2_000) -> dict[str, list[float]]:
        """Input summary values of a variant's newest ``limit`` requests, per summary; those
        pinned to the version are left out (their client chose the variant)."""
        query = (
            select(PayloadRow.summaries)
            .where(PayloadRow.endpoint == endpoint, PayloadRow.variant == variant)
            .where(PayloadRow.summaries.is_not(None), PayloadRow.pinned.is_(False))
            .order_by(PayloadRow.id.desc())
            .limit(limit)
        )
        values: dict[str, list[float]] = {}
        with self._db.reading() as session:
            for (summary,) in session.execute(query):
                for name, rows in (summary or {}).items():
                    values.setdefault(name, []).extend(rows)
        return values

    def prune(self, retention_s: float, max_rows_per_endpoint: int) -> int:
        """Forget requests older than ``retention_s`` or beyond the newest rows kept."""
        cutoff = self._clock() - timedelta(seconds=retention_s)

        def work(session: Session) -> int:
            removed = _deleted(session, delete(PayloadRow).where(PayloadRow.at < cutoff))
            session.execute(delete(FeedbackRow).where(FeedbackRow.received_at < cutoff))
            for endpoint in session.scalars(select(PayloadRow.endpoint).distinct()).all():
                boundary = session.scalar(
                    select(PayloadRow.id)
                    .where(PayloadRow.endpoint == endpoint)
                    .order_by(PayloadRow.id.desc())
                    .offset(max_rows_per_endpoint)
                    .limit(1)
                )
                if boundary is not None:
                    removed += _deleted(
                        session,
                        delete(PayloadRow).where(
                            PayloadRow.endpoint == endpoint, PayloadRow.id <= boundary
                        ),
                    )
            return removed

        return self._db.write(work)

    def variants(self, endpoint: str) -> list[tuple[str, str, int]]:
        """(variant, model, version) of every variant with collected requests, oldest first."""
        query = (
            select(PayloadRow.variant, PayloadRow.model_name, PayloadRow.version)
            .where(PayloadRow.endpoint == endpoint)
            .group_by(PayloadRow.variant, PayloadRow.model_name, PayloadRow.version)
            .order_by(func.min(PayloadRow.id))
        )
        with self._db.reading() as session:
            return [(variant, model, version) for variant, model, version in session.execute(query)]

    def count(self, endpoint: str) -> int:
        with self._db.reading() as session:
            query = select(func.count()).where(PayloadRow.endpoint == endpoint)
            return int(session.scalar(query) or 0)


def _rows(
    endpoint: str,
    variant: str,
    model_version: tuple[str, int],
    instance: str,
    records: Sequence[CollectedPayload],
) -> list[dict[str, Any]]:
    model, version = model_version
    return [
        {
            "endpoint": endpoint, "variant": variant, "model_name": model,
            "version": version, "instance": instance[:32], "seq": r.seq,
            "request_id": r.request_id, "correlation_id": r.correlation_id,
            "at": _from_unix(r.time), "status": r.status,
            "latency_ms": r.latency_ms, "predictions": r.predictions,
            "summaries": r.summaries, "inputs": r.inputs, "kind": r.kind,
            "pinned": r.pinned,
        }
        for r in records
    ]  # fmt: skip


def _tally_row(session: Session, endpoint: str, variant: str, instance: str) -> PayloadTallyRow:
    """The tally of a replica instance, new (nothing counted yet) if there was none."""
    row = session.get(PayloadTallyRow, instance[:32])
    if row is None:
        row = PayloadTallyRow(
            instance=instance[:32], endpoint=endpoint, variant=variant, sample_rate=1.0,
            answered=0, sampled_out=0, dropped=0,
        )  # fmt: skip
        session.add(row)
    return row


def _tally(
    variant: str, rate: float, answered: int, sampled_out: int, dropped: int
) -> PayloadTally:
    return PayloadTally(
        variant=variant, sample_rate=rate, answered=answered, logged=answered - sampled_out,
        sampled_out=sampled_out, dropped=dropped,
    )  # fmt: skip


def _deleted(session: Session, statement: Delete) -> int:
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount or 0)


def _record(row: PayloadRow, labels: list[str] | None) -> PayloadRecord:
    return PayloadRecord(
        request_id=row.request_id, correlation_id=row.correlation_id, time=row.at,
        endpoint=row.endpoint, model=row.model_name, version=row.version, variant=row.variant,
        status=row.status, latency_ms=row.latency_ms, predictions=row.predictions, labels=labels,
        inputs=row.inputs, kind=row.kind, pinned=row.pinned,
    )  # fmt: skip


def _from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
