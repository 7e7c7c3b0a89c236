"""``/api/v1`` routes of the payload log: feedback in, requests and quality out.

``POST /feedback`` takes ground-truth labels for request ids (the id is in every answer's
``ferryman-request-id`` header); ``GET /endpoints/{e}/payloads`` searches the collected
requests; ``GET /endpoints/{e}/quality`` gives accuracy, precision, recall and F1 per variant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.control.metrics.feedback import FeedbackSignals
from ferryman.registry import MAX_VERSION, Feedback, PayloadRecord

router = APIRouter(prefix="/api/v1")

MAX_FEEDBACK_ITEMS = 10_000


class FeedbackAnswer(BaseModel):
    accepted: int
    unknown: list[str] = Field(
        description="Request ids not collected yet: kept, and joined once they are."
    )


class Payloads(BaseModel):
    records: list[PayloadRecord]


@router.post("/feedback")
def give_feedback(
    body: Feedback | Annotated[list[Feedback], Field(max_length=MAX_FEEDBACK_ITEMS)],
    registry: RegistryDep,
    actor: ActorDep,
) -> FeedbackAnswer:
    items = body if isinstance(body, list) else [body]
    accepted, unknown = registry.payloads.give_feedback(items, actor)
    return FeedbackAnswer(accepted=accepted, unknown=unknown[:100])


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
    since = None if window_s is None else datetime.now(UTC) - timedelta(seconds=window_s)
    scored = FeedbackSignals(registry).by_variant(endpoint, since)
    variants = {name: {"model": model, "version": version, **scores.as_json()}
                for name, (model, version, scores) in scored.items()}  # fmt: skip
    return {"endpoint": endpoint, "variants": variants}


def _aware(moment: datetime | None) -> datetime | None:
    """Times without a zone are read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
