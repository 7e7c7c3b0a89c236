"""``/api/v1`` routes of the payload log: feedback in, requests and quality out.

``POST /feedback`` takes ground-truth labels for request ids (the id is in every answer's
``ferryman-request-id`` header) and says per label what it did: stored, corrected (a later,
different label), unchanged, kept for an answer not collected yet, or refused with the
reason (not a class of the model, not one label per row, no classes to label);
``GET /endpoints/{e}/payloads`` searches the collected requests;
``GET /endpoints/{e}/quality`` gives accuracy, precision, recall and F1 per variant, and a
language model's votes: completions rated up and down, and the thumbs-up rate.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.control.metrics.feedback import FeedbackSignals, thumbs
from ferryman.errors import InvalidInput
from ferryman.registry import (
    MAX_VERSION,
    Feedback,
    FeedbackResult,
    FeedbackStatus,
    PayloadRecord,
)
from ferryman.registry.feedback import KEPT

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1")

MAX_FEEDBACK_ITEMS = 10_000


class FeedbackAnswer(BaseModel):
    """What became of each label, in the order they were sent, and the counts."""

    stored: int = Field(description="Joined to the answer their request id names.")
    corrected: int = Field(description="Replaced an earlier, different label (a correction).")
    unchanged: int = Field(description="Already labelled so.")
    unknown: int = Field(
        description="No collected answer has the id yet: kept, and joined once one is."
    )
    sampled_out: int = Field(
        default=0,
        description="No collected answer has the id and the declared payload sample rate left "
        "its request out: kept, but counted in no accuracy.",
    )
    not_kept: int = Field(
        default=0,
        description="No collected answer has the id, and control.max_pending_feedback labels "
        "already wait for theirs: not kept (also counted in refused).",
    )
    refused: int = Field(description="Not stored: see each item's detail.")
    items: list[FeedbackResult]


class Payloads(BaseModel):
    records: list[PayloadRecord]


@router.post("/feedback")
def give_feedback(
    body: Feedback | Annotated[list[Feedback], Field(max_length=MAX_FEEDBACK_ITEMS)],
    registry: RegistryDep,
    actor: ActorDep,
    request: Request,
) -> FeedbackAnswer:
    """Store labels; 400 when none of them could be (each item says why)."""
    items = body if isinstance(body, list) else [body]
    pending = request.app.state.settings.control.max_pending_feedback
    results = registry.payloads.give_feedback(items, actor, registry.class_labels, pending)
    answer = feedback_answer(results)
    if answer.not_kept:
        logger.warning("feedback: %d labels for unknown request ids not kept (cap %d)",
                       answer.not_kept, pending)  # fmt: skip
    if items and answer.refused == len(items):
        first = results[0]
        more = f" (and {len(items) - 1} more refused)" if len(items) > 1 else ""
        raise InvalidInput(f"{first.status.value}: {first.detail}{more}")
    return answer


def feedback_answer(results: list[FeedbackResult]) -> FeedbackAnswer:
    """The counts of ``results`` by status, and the results themselves."""
    counts = Counter(result.status for result in results)
    return FeedbackAnswer(
        stored=counts[FeedbackStatus.STORED],
        corrected=counts[FeedbackStatus.CORRECTED],
        unchanged=counts[FeedbackStatus.UNCHANGED],
        unknown=counts[FeedbackStatus.UNKNOWN_REQUEST],
        sampled_out=counts[FeedbackStatus.SAMPLED_OUT],
        not_kept=counts[FeedbackStatus.NOT_KEPT],
        refused=sum(n for status, n in counts.items() if status not in KEPT),
        items=results,
    )


class PayloadQuery(BaseModel):
    """Filters of a payload-log search."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    variant: str | None = Field(default=None, max_length=160)
    status: int | None = Field(default=None, ge=100, le=599)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=100, ge=1, le=1000)


@router.get("/endpoints/{endpoint}/payloads")
def search_payloads(
    endpoint: str, registry: RegistryDep, query: Annotated[PayloadQuery, Query()]
) -> Payloads:
    found = registry.payloads.search(
        endpoint, version=query.version, variant=query.variant, status=query.status,
        since=_aware(query.since), until=_aware(query.until), limit=query.limit,
    )  # fmt: skip
    return Payloads(records=found)


@router.get("/endpoints/{endpoint}/quality")
def endpoint_quality(
    endpoint: str,
    registry: RegistryDep,
    window_s: Annotated[float | None, Query(gt=0, le=366 * 24 * 3600)] = None,
) -> dict[str, Any]:
    """Per variant: what feedback labels say (accuracy, precision, recall, F1), what ratings
    of completions say (``thumbs_up``, ``thumbs_down``, ``thumbs_up_rate``: null without
    votes), each of the newest 2,000 answered in the last ``window_s`` (default: all kept),
    and what the payload log kept."""
    since = None if window_s is None else datetime.now(UTC) - timedelta(seconds=window_s)
    signals = FeedbackSignals(registry)
    scored = signals.by_variant(endpoint, since)
    logs = {tally.variant: tally.model_dump(exclude={"variant"})
            for tally in registry.payloads.tallies(endpoint)}  # fmt: skip
    variants = {name: {"model": model, "version": version, **scores.as_json(),
                       **thumbs(signals.rated(endpoint, name, since)),
                       "payload_log": logs.get(name)}
                for name, (model, version, scores) in scored.items()}  # fmt: skip
    return {"endpoint": endpoint, "variants": variants}


def _aware(moment: datetime | None) -> datetime | None:
    """Times without a zone are read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
