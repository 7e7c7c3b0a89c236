"""Feedback, as the registry keeps it: the true labels (or ratings) of answered requests.

Ground truth arrives later than its request, as a label for a request id
(:meth:`Feedbacks.give`); it is joined to the collected answer when read, so a label may
arrive before or after its request is collected. A label is checked against the answer it
names (one per row, a class of the model) and refused if it does not fit; a second,
different label is a correction. A language model's completion is rated ``up`` or
``down`` under the same rules. A label for a request a sampling payload log left out is
told so (:class:`FeedbackStatus`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, NamedTuple

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ferryman.protocol.openai import COMPLETION_KIND, RATINGS
from ferryman.protocol.payload_sampling import is_logged
from ferryman.registry.database import Database
from ferryman.registry.records import Record
from ferryman.registry.tables import FeedbackRow, PayloadRow, PayloadTallyRow

MAX_LABEL_ROWS = 10_000
MAX_PENDING = 100_000
"""The default of ``control.max_pending_feedback``."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A class name as a model answers it: never empty, never a document."""


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
    NOT_KEPT = "not_kept"
    """Not kept: no collected answer has this id, and as many labels as the cap allows
    already wait for their answers (``control.max_pending_feedback``)."""


KEPT = frozenset({FeedbackStatus.STORED, FeedbackStatus.CORRECTED, FeedbackStatus.UNCHANGED,
                  FeedbackStatus.UNKNOWN_REQUEST, FeedbackStatus.SAMPLED_OUT})  # fmt: skip


class FeedbackResult(Record):
    """What was done with one label, and why."""

    request_id: str
    status: FeedbackStatus
    detail: str = ""
    previous: list[str] | None = None
    """The labels a correction replaced."""


class Feedbacks:
    """The labels of answered requests (see the module's docstring)."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def give(
        self,
        items: Iterable[Feedback],
        actor: str,
        classes_of: Callable[[str, int], Sequence[str]] = lambda model, version: (),
        max_pending: int = MAX_PENDING,
    ) -> list[FeedbackResult]:
        """Store labels and say, per item, what was done (see :class:`FeedbackStatus`).

        A label joins the one answer its request id names. It is checked against that
        answer (one label per row; a class of the model, when ``classes_of(model, version)``
        knows its classes) and refused if it does not fit. A label for an id no collected
        answer has yet is kept (the answer may not be collected yet) and joins it once it
        is, up to ``max_pending`` such labels waiting at once (a client sending labels for
        ids that never come must not fill the database): past it, one is not kept. A
        second, different label for an id replaces the first and counts as a correction;
        the same label again changes nothing.
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
                   for a in answered.values() if a.kind != COMPLETION_KIND}  # fmt: skip
        rates = self._sample_rates() if len(answered) < len(ids) else set()

        def work(session: Session) -> list[FeedbackResult]:
            query = select(FeedbackRow).where(FeedbackRow.request_id.in_(ids))
            labelled = {row.request_id: row for row in session.scalars(query)}
            room = max_pending - _pending(session) if len(answered) < len(ids) else 0
            results = []
            for item in items:
                answer = answered.get(item.request_id)
                if answer is None and item.request_id not in labelled:
                    if room <= 0:
                        results.append(_not_kept(item, max_pending))
                        continue
                    room -= 1
                problem = None
                if answer is not None and answer.kind == COMPLETION_KIND:
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

    def _sample_rates(self) -> set[float]:
        """The sample rates replicas declared below 1 (none: every request is logged)."""
        rate = PayloadTallyRow.sample_rate
        query = select(rate).where(rate < 1).distinct()
        with self._db.reading() as session:
            return {float(rate) for rate in session.scalars(query)}


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


def _pending(session: Session) -> int:
    """How many labels wait for an answer that no collected request has yet."""
    joined = select(PayloadRow.id).where(PayloadRow.request_id == FeedbackRow.request_id)
    query = select(func.count()).select_from(FeedbackRow).where(~joined.exists())
    return int(session.scalar(query) or 0)


def _not_kept(item: Feedback, max_pending: int) -> FeedbackResult:
    return FeedbackResult(
        request_id=item.request_id, status=FeedbackStatus.NOT_KEPT,
        detail=f"no collected answer has this request id yet, and {max_pending} labels already "
        "wait for theirs (control.max_pending_feedback); this one is not kept: send it again "
        "once its answer is collected",
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
