"""The metric history as the registry keeps it: one row per variant and sample.

The monitor writes every sample of a tick, and forgets those past the retention, in one
transaction (:meth:`MetricHistory.add`); a restarted control plane reads the retained
samples back into memory (:meth:`MetricHistory.since`). A series without data in a sample
(no requests, so no latency) is NULL in its column and absent from the record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from pydantic import Field, field_validator
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ferryman.registry.database import Database
from ferryman.registry.records import Record
from ferryman.registry.tables import MetricSampleRow

SERIES = MappingProxyType(
    {
        "qps": "requests per second answered at the gateway",
        "error_rate": "share of answers that were 5xx (0..1)",
        "client_error_rate": "share of answers that were 4xx: requests the model refused (0..1)",
        "p50_ms": "median latency at the gateway, in ms",
        "p99_ms": "99th-percentile latency at the gateway, in ms",
        "batch_size": "mean rows per model call on the replicas",
        "replicas": "replicas ready (routed)",
        "replicas_desired": "replicas the control plane keeps for the variant",
        "cpu_pct": "CPU of the variant's replicas, summed, in percent of one core",
        "rss_bytes": "resident memory of the variant's replicas, summed, in bytes",
        "weight": "share of the endpoint's traffic routed to the variant, in percent",
        "accuracy": "accuracy from feedback labels (0..1)",
        "f1": "macro F1 from feedback labels (0..1)",
        "input_drift_psi": "largest PSI of recent inputs against the training data",
        "prediction_drift": "Jensen-Shannon divergence of top-1 classes from the main variant",
        "restarts_10m": "replica restarts (failures) in the last 10 minutes",
    }
)
"""Every series the monitor records, with what it measures (and its unit)."""


class MetricSample(Record):
    """The series of one (endpoint, variant) at one moment; absent: no data then."""

    time_s: float
    endpoint: str
    variant: str
    values: dict[str, float]
    sizes: dict[str, float] = Field(default_factory=dict, exclude=True)
    """How many observations each value stands on (see ``RuleSpec.min_samples``); kept in
    memory for the alert rules only, not stored."""

    @field_validator("values")
    @classmethod
    def _known_and_finite(cls, values: dict[str, float]) -> dict[str, float]:
        unknown = set(values) - set(SERIES)
        if unknown:
            raise ValueError(f"unknown series {sorted(unknown)}; known: {', '.join(SERIES)}")
        return {name: value for name, value in values.items() if math.isfinite(value)}


class MetricHistory:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def add(self, samples: Sequence[MetricSample], retention_s: float) -> int:
        """Keep ``samples`` and forget those older than ``retention_s``; how many went."""
        cutoff = self._clock() - timedelta(seconds=retention_s)
        rows = [
            {"at": _at(s.time_s), "endpoint": s.endpoint, "variant": s.variant, **s.values}
            for s in samples
        ]

        def work(session: Session) -> int:
            if rows:
                session.execute(insert(MetricSampleRow), rows)
            removed = session.execute(delete(MetricSampleRow).where(MetricSampleRow.at < cutoff))
            return int(getattr(removed, "rowcount", 0) or 0)

        return self._db.write(work)

    def since(
        self, since_s: float, endpoint: str | None = None, series: Sequence[str] | None = None
    ) -> list[MetricSample]:
        """Samples from ``since_s`` (unix seconds) on, oldest first; of ``series`` only when
        given (a week of costs needs two columns, not sixteen).

        Rows are read as plain tuples (no ORM objects): a restart reloads a whole day.
        """
        row = MetricSampleRow
        names = list(SERIES) if series is None else [n for n in SERIES if n in series]
        columns = [getattr(row, name) for name in names]
        query = select(row.at, row.endpoint, row.variant, *columns).where(row.at >= _at(since_s))
        if endpoint is not None:
            query = query.where(row.endpoint == endpoint)
        with self._db.reading() as session:
            found = session.execute(query.order_by(row.at, row.id)).all()
        return [_from_columns(names, at, endpoint_, variant, values)
                for at, endpoint_, variant, *values in found]  # fmt: skip

    def latest(self, endpoint: str | None = None) -> list[MetricSample]:
        """The newest sample of every (endpoint, variant)."""
        row = MetricSampleRow
        newest = select(row.endpoint, row.variant, func.max(row.at).label("at")).group_by(
            row.endpoint, row.variant
        )
        if endpoint is not None:
            newest = newest.where(MetricSampleRow.endpoint == endpoint)
        subquery = newest.subquery()
        query = select(MetricSampleRow).join(
            subquery,
            (MetricSampleRow.endpoint == subquery.c.endpoint)
            & (MetricSampleRow.variant == subquery.c.variant)
            & (MetricSampleRow.at == subquery.c.at),
        )
        with self._db.reading() as session:
            found = {(row.endpoint, row.variant): _sample(row) for row in session.scalars(query)}
        return [found[key] for key in sorted(found)]


def _at(time_s: float) -> datetime:
    return datetime.fromtimestamp(time_s, UTC)


def _from_columns(
    names: Sequence[str], at: datetime, endpoint: str, variant: str, values: list[float | None]
) -> MetricSample:
    """A sample of stored values, which were checked when they were written."""
    present = {name: value for name, value in zip(names, values, strict=True) if value is not None}
    return MetricSample.model_construct(
        time_s=at.timestamp(), endpoint=endpoint, variant=variant, values=present
    )


def _sample(row: MetricSampleRow) -> MetricSample:
    values = {name: value for name in SERIES if (value := getattr(row, name)) is not None}
    return MetricSample(
        time_s=row.at.timestamp(), endpoint=row.endpoint, variant=row.variant, values=values
    )
