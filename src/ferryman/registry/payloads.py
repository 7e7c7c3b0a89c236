"""The payload log and feedback, as kept by the registry.

The control plane collects answered requests from each replica's payload log
(:meth:`Payloads.add`, idempotent: a record is identified by its replica instance and
sequence) and keeps them for a bounded time and number (:meth:`Payloads.prune`). Ground
truth arrives later as feedback for a request id (:meth:`Payloads.give_feedback`); it is
joined to predictions when read, so a label may arrive before or after its request is
collected. Reading is by endpoint with filters (:meth:`Payloads.search`), and the pairs of
(prediction, label) per variant feed the quality figures (:meth:`Payloads.labelled`).

A language model's completion is a record of kind ``completion`` whose request id is the
completion's own (the ``id`` of the OpenAI answer); its feedback is a rating, ``up`` or
``down``, under the same rules (a second, different rating is a correction), and the share
of ``up`` per variant feeds the thumbs-up gate (:meth:`Payloads.rated`).

Nothing the replicas' logs leave out is silent: each collected page's totals (requests
answered, sampled out at the declared rate, dropped unread) are kept per replica instance
(:meth:`Payloads.tally`) and summed per variant beside the quality figures
(:meth:`Payloads.tallies`). A label for a request a sampling log left out is told so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, cast

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import CursorResult, Delete, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ferryman.errors import InvalidInput
from ferryman.names import validate_name
from ferryman.protocol.openai import COMPLETION_KIND, RATINGS
from ferryman.protocol.payload_sampling import is_logged
from ferryman.registry.database import Database
from ferryman.registry.records import Record
from ferryman.registry.tables import FeedbackRow, PayloadRow, PayloadTallyRow

PAYLOADS = PayloadRow.__table__
MAX_SEARCH = 1_000
MAX_LABELLED = 20_000
MAX_LABEL_ROWS = 10_000

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A class name as a model answers it: never empty, never a document."""
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


class Feedback(BaseModel):
    """The true label of a request (one per row for a request of several rows), or the
    rating of a completion (``up`` or ``down``; its id may be sent as ``completion_id``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
        validation_alias=AliasChoices("request_id", "completion_id"),
        description="The answer's ferryman-request-id header, or a completion's id.",
    )  # fmt: skip
    label: Label | Annotated[list[Label], Field(min_length=1, max_length=MAX_LABEL_ROWS)] = Field(
        description="The label (1 to 256 characters), or one per row of the request."
    )

    @property
    def labels(self) -> list[str]:
        return [self.label] if isinstance(self.label, str) else list(self.label)


class FeedbackStatus(StrEnum):
    """What became of one label."""

    STORED = "stored"
    """Joined to the answer its request id names."""
    CORRECTED = "corrected"
    """Replaced an earlier, different label of the same request (counted as a correction)."""
    UNCHANGED = "unchanged"
    """The request already had exactly this label."""
    UNKNOWN_REQUEST = "unknown_request"
    """No collected answer has this id yet: kept, and joined once one is collected."""
    UNKNOWN_CLASS = "unknown_class"
    """Refused: not a class of the model that answered."""
    WRONG_ROW_COUNT = "wrong_row_count"
    """Refused: the answer had another number of rows than labels were given."""
    NO_PREDICTION = "no_prediction"
    """Refused: the request was answered without classes (an error, or not a classifier)."""
    SAMPLED_OUT = "sampled_out"
    """No collected answer has this id, and the declared payload sample rate left it out:
    kept, but it will join nothing and counts in no accuracy."""


KEPT = frozenset({FeedbackStatus.STORED, FeedbackStatus.CORRECTED, FeedbackStatus.UNCHANGED,
                  FeedbackStatus.UNKNOWN_REQUEST, FeedbackStatus.SAMPLED_OUT})  # fmt: skip


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


class FeedbackResult(Record):
    """What was done with one label, and why."""

    request_id: str
    status: FeedbackStatus
    detail: str = ""
    previous: list[str] | None = None
    """The labels a correction replaced."""


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
    def up_rate(self) -> float | None:
        return self.up / self.rated if self.rated else None


class Payloads:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

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

    def _sample_rates(self) -> set[float]:
        """The sample rates replicas declared below 1 (none: every request is logged)."""
        rate = PayloadTallyRow.sample_rate
        query = select(rate).where(rate < 1).distinct()
        with self._db.reading() as session:
            return {float(rate) for rate in session.scalars(query)}

    def give_feedback(
        self,
        items: Iterable[Feedback],
        actor: str,
        classes_of: Callable[[str, int], Sequence[str]] = lambda model, version: (),
    ) -> list[FeedbackResult]:
        """Store labels and say, per item, what was done (see :class:`FeedbackStatus`).

        A label joins the one answer its request id names. It is checked against that
        answer (one label per row; a class of the model, when ``classes_of(model, version)``
        knows its classes) and refused if it does not fit. A label for an id no collected
        answer has yet is kept (the answer may not be collected yet) and joins it once it
        is. A second, different label for an id replaces the first and counts as a
        correction; the same label again changes nothing.
        """
        items = list(items)
        if not items:
            return []

        ids = {item.request_id for item in items}
        query = (
            select(PayloadRow.request_id, PayloadRow.model_name, PayloadRow.version,
                   PayloadRow.predictions, PayloadRow.status, PayloadRow.kind)
            .where(PayloadRow.request_id.in_(ids))
            .order_by(PayloadRow.id)
        )  # fmt: skip
        with self._db.reading() as session:
            answered: dict[str, _Answer] = {
                row.request_id: _Answer(row.model_name, row.version, row.predictions,
                                        row.status, row.kind)
                for row in session.execute(query)
            }  # fmt: skip
        # Classes are read outside the write: a second connection inside it could wait on a
        # pool that writers waiting for the database lock have emptied.
        classes = {(a.model, a.version): tuple(classes_of(a.model, a.version))
                   for a in answered.values() if a.kind != COMPLETION}  # fmt: skip
        rates = self._sample_rates() if len(answered) < len(ids) else set()

        def work(session: Session) -> list[FeedbackResult]:
            query = select(FeedbackRow).where(FeedbackRow.request_id.in_(ids))
            labelled = {row.request_id: row for row in session.scalars(query)}
            results = []
            for item in items:
                answer = answered.get(item.request_id)
                problem = None
                if answer is not None and answer.kind == COMPLETION:
                    problem = _misrated(item, f"{answer.model} v{answer.version}")
                elif answer is not None:
                    problem = _misfit(
                        item, f"{answer.model} v{answer.version}", answer.predictions,
                        answer.status, classes[answer.model, answer.version],
                    )  # fmt: skip
                if problem is not None:
                    results.append(FeedbackResult(
                        request_id=item.request_id, status=problem[0], detail=problem[1]
                    ))  # fmt: skip
                    continue
                result = self._keep(session, item, labelled, actor, answer is not None)
                results.append(_sampled_out(result, rates))
            return results

        return self._db.write(work)

    def _keep(
        self,
        session: Session,
        item: Feedback,
        labelled: dict[str, FeedbackRow],
        actor: str,
        is_answered: bool,
    ) -> FeedbackResult:
        """Store one label that fits its answer (or whose answer is not collected yet)."""
        row = labelled.get(item.request_id)
        labels = item.labels
        if row is not None and row.labels == labels:
            return FeedbackResult(
                request_id=item.request_id, status=FeedbackStatus.UNCHANGED,
                detail="already labelled so; nothing changed",
            )  # fmt: skip
        previous = None if row is None else list(row.labels)
        if row is None:
            row = labelled[item.request_id] = FeedbackRow(request_id=item.request_id, corrections=0)
            session.add(row)
        else:
            row.corrections = (row.corrections or 0) + 1
        row.labels, row.received_at, row.actor = labels, self._clock(), actor
        if previous is not None:
            return FeedbackResult(
                request_id=item.request_id, status=FeedbackStatus.CORRECTED, previous=previous,
                detail=f"replaced the earlier label {_shown(previous)} (a correction)",
            )  # fmt: skip
        if is_answered:
            return FeedbackResult(request_id=item.request_id, status=FeedbackStatus.STORED)
        return FeedbackResult(
            request_id=item.request_id, status=FeedbackStatus.UNKNOWN_REQUEST,
            detail="no collected answer has this request id yet; the label is kept and joins "
            "the answer once it is collected (use the ferryman-request-id header of the answer)",
        )  # fmt: skip

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
        """The newest ``limit`` labelled rows a variant answered (since a time, if given).

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
            .where(PayloadRow.predictions.is_not(None))
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
        """The newest ``limit`` rated completions a variant answered, and how many were up."""
        query = (
            select(PayloadRow.request_id, PayloadRow.version, FeedbackRow.labels)
            .join(FeedbackRow, FeedbackRow.request_id == PayloadRow.request_id)
            .where(PayloadRow.endpoint == endpoint, PayloadRow.variant == variant)
            .where(PayloadRow.kind == COMPLETION)
            .order_by(PayloadRow.id.desc())
            .limit(min(limit, MAX_LABELLED))
        )
        if since is not None:
            query = query.where(PayloadRow.at >= since)
        rated = up = version = 0
        with self._db.reading() as session:
            for _, row_version, labels in session.execute(query):
                version = version or row_version
                rated += 1
                up += labels == ["up"]
        return Rated(variant=variant, version=version, rated=rated, up=up)

    def summaries(self, endpoint: str, variant: str, limit: int = 2_000) -> dict[str, list[float]]:
        """Input summary values of a variant's newest ``limit`` requests, per summary."""
        query = (
            select(PayloadRow.summaries)
            .where(PayloadRow.endpoint == endpoint, PayloadRow.variant == variant)
            .where(PayloadRow.summaries.is_not(None))
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


class _Answer(NamedTuple):
    """What the feedback of a request id is checked against."""

    model: str
    version: int
    predictions: list[str] | None
    status: int
    kind: str | None


def _misrated(item: Feedback, subject: str) -> tuple[FeedbackStatus, str] | None:
    """Why ``item`` is no rating of the completion it names (None when it is one)."""
    labels = item.labels
    if len(labels) == 1 and labels[0] in RATINGS:
        return None
    shown = _shown(labels, 3)
    return FeedbackStatus.UNKNOWN_CLASS, (
        f"request {item.request_id} is a completion of {subject}; it is rated with one "
        f"label, 'up' or 'down', not {shown}"
    )


def _misfit(
    item: Feedback,
    subject: str,
    predictions: list[str] | None,
    status: int,
    classes: Sequence[str],
) -> tuple[FeedbackStatus, str] | None:
    """Why ``item``'s labels do not fit the answer they name (None when they do)."""
    labels = item.labels
    if predictions is None:
        return FeedbackStatus.NO_PREDICTION, (
            f"request {item.request_id} was answered {status} by {subject} without classes to "
            "label (an error, or a model that is no classifier); nothing stored"
        )
    if len(labels) != len(predictions):
        return FeedbackStatus.WRONG_ROW_COUNT, (
            f"request {item.request_id} answered {len(predictions)} rows and got "
            f"{len(labels)} label{'s' if len(labels) != 1 else ''}; send a list of "
            f"{len(predictions)} labels, one per row in order"
        )
    unknown = [label for label in labels if classes and label not in classes]
    if unknown:
        return FeedbackStatus.UNKNOWN_CLASS, (
            f"label {unknown[0][:64]!r} is not a class of {subject} (its classes: "
            f"{_shown(classes)}); send one of those"
        )
    return None


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


def _sampled_out(result: FeedbackResult, rates: set[float]) -> FeedbackResult:
    """``result``, told as sampled out where a declared sample rate left its request out."""
    if result.status is not FeedbackStatus.UNKNOWN_REQUEST:
        return result
    left_out = sorted(rate for rate in rates if not is_logged(result.request_id, rate))
    if not left_out:
        return result
    return FeedbackResult(
        request_id=result.request_id, status=FeedbackStatus.SAMPLED_OUT,
        detail=f"no collected answer has this id, and a payload log sampling at rate "
        f"{left_out[-1]:g} leaves this id out: the label is kept, but joins no answer "
        "unless one is collected (it counts in no accuracy until then)",
    )  # fmt: skip


def _shown(values: Sequence[str], most: int = 20) -> str:
    shown = ", ".join(value[:64] for value in values[:most])
    return shown + (f", … ({len(values)} in all)" if len(values) > most else "")


def _deleted(session: Session, statement: Delete) -> int:
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount or 0)


def _record(row: PayloadRow, labels: list[str] | None) -> PayloadRecord:
    return PayloadRecord(
        request_id=row.request_id, correlation_id=row.correlation_id, time=row.at,
        endpoint=row.endpoint, model=row.model_name, version=row.version, variant=row.variant,
        status=row.status, latency_ms=row.latency_ms, predictions=row.predictions, labels=labels,
        inputs=row.inputs, kind=row.kind,
    )  # fmt: skip


def _from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
