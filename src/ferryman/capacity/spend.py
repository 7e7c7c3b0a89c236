"""What each variant cost, per day, from the monitor's history of its replica counts.

The monitor writes a sample per variant every ``monitor_interval_s``; its ``replicas`` series
is the number of replicas ready (routed) at that moment. Replica-seconds are that count
integrated over time by **sample and hold**: a sample's count holds from its time until the
next sample of the same variant. A gap between two samples longer than ``max_gap_s`` (the
control plane was down, or the variant was not deployed) is not counted at all: nobody
knows what ran then, and guessing would invent cost. The last sample of a variant holds for
nothing (the time after it is not yet known). An interval that crosses midnight (UTC) is
split between the two days.

Cost = replica-seconds / 3600 x the price per hour of the fleet's instance shape (each
replica priced as one instance, as ``cost.fleet_costs`` does for the cost now).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ferryman.registry import MetricSample
from ferryman.registry.records import Record

DAY_S = 86400.0
SPEND_SERIES = ("replicas", "replicas_desired", "qps")
"""The series the cost and the savings are computed from."""


class DailySpend(Record):
    """One variant of one endpoint over one UTC day."""

    endpoint: str
    variant: str
    day: str
    """The UTC date, YYYY-MM-DD."""
    replica_seconds: float
    counted_s: float
    """Seconds of the day covered by samples (gaps longer than the bound left out)."""
    zero_s: float
    """Of those, seconds the variant was scaled to zero (none ready and none desired)."""
    cost: float


@dataclass
class Tally:
    """Running totals of one (endpoint, variant, day)."""

    replica_seconds: float = 0.0
    counted_s: float = 0.0
    zero_s: float = 0.0


@dataclass(frozen=True)
class Span:
    """A held interval of one variant: ``replicas`` from ``start_s`` to ``end_s``.

    ``replicas`` is the count read at ``start_s``, held; ``qps`` is the rate of the sample at
    ``end_s``, which the monitor measured over exactly this interval.
    """

    endpoint: str
    variant: str
    start_s: float
    end_s: float
    replicas: float
    qps: float | None = None
    is_scaled_to_zero: bool = False
    """No replica ready and none desired: the control plane chose zero (not a crash)."""

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


def spans(samples: Iterable[MetricSample], max_gap_s: float) -> Iterator[Span]:
    """The held intervals of every variant, each within one UTC day.

    >>> s = [MetricSample(time_s=t, endpoint="e", variant="v1", values={"replicas": r})
    ...      for t, r in ((0, 2), (10, 3), (20, 1), (100, 4))]
    >>> [(x.start_s, x.end_s, x.replicas) for x in spans(s, max_gap_s=30)]
    [(0.0, 10.0, 2.0), (10.0, 20.0, 3.0)]
    """
    by_variant: dict[tuple[str, str], list[MetricSample]] = {}
    for sample in samples:
        if "replicas" in sample.values:
            by_variant.setdefault((sample.endpoint, sample.variant), []).append(sample)
    for (endpoint, variant), found in sorted(by_variant.items()):
        found.sort(key=lambda s: s.time_s)
        for this, after in itertools.pairwise(found):
            if not 0 < after.time_s - this.time_s <= max_gap_s:
                continue
            replicas = this.values["replicas"]
            is_zero = replicas <= 0 and this.values.get("replicas_desired", replicas) <= 0
            for start_s, end_s in _split_at_midnight(this.time_s, after.time_s):
                yield Span(endpoint, variant, start_s, end_s, replicas, after.values.get("qps"),
                           is_zero)  # fmt: skip


def _split_at_midnight(start_s: float, end_s: float) -> Iterator[tuple[float, float]]:
    while True:
        midnight = (math.floor(start_s / DAY_S) + 1) * DAY_S
        if end_s <= midnight:
            yield float(start_s), float(end_s)
            return
        yield float(start_s), midnight
        start_s = midnight


def day_of(time_s: float) -> str:
    """The UTC date of a unix time. ``day_of(0)`` is ``'1970-01-01'``."""
    return datetime.fromtimestamp(time_s, UTC).date().isoformat()


def tally(held: Iterable[Span]) -> dict[tuple[str, str, str], Tally]:
    """Replica-seconds, seconds counted and seconds at zero per (endpoint, variant, day)."""
    totals: dict[tuple[str, str, str], Tally] = {}
    for span in held:
        one = totals.setdefault((span.endpoint, span.variant, day_of(span.start_s)), Tally())
        one.replica_seconds += span.replicas * span.seconds
        one.counted_s += span.seconds
        if span.is_scaled_to_zero:
            one.zero_s += span.seconds
    return totals


def daily_spend(held: Iterable[Span], price_per_hour: float) -> list[DailySpend]:
    """Each variant's replica-seconds and cost per UTC day, ordered by day, endpoint, variant.

    Two replicas for an hour and none for the next at 0.5 per hour: 7,200 replica-seconds,
    1.0 spent, an hour at zero.

    >>> at = [0.0, 1800.0, 3600.0, 5400.0, 7200.0]
    >>> s = [MetricSample(time_s=t, endpoint="e", variant="v1",
    ...      values={"replicas": 2.0 if t < 3600 else 0.0}) for t in at]
    >>> d = daily_spend(spans(s, max_gap_s=1800), price_per_hour=0.5)[0]
    >>> (d.day, d.replica_seconds, d.cost, d.zero_s)
    ('1970-01-01', 7200.0, 1.0, 3600.0)
    """
    found = tally(held)
    return [
        DailySpend(
            endpoint=endpoint,
            variant=variant,
            day=day,
            replica_seconds=one.replica_seconds,
            counted_s=one.counted_s,
            zero_s=one.zero_s,
            cost=one.replica_seconds / 3600 * price_per_hour,
        )
        for (endpoint, variant, day), one in sorted(found.items(), key=_by_day)
    ]


def _by_day(item: tuple[tuple[str, str, str], Tally]) -> tuple[str, str, str]:
    (endpoint, variant, day), _ = item
    return day, endpoint, variant


@dataclass
class SpendTotals:
    """The window's totals of one (endpoint, variant)."""

    replica_seconds: float = 0.0
    zero_s: float = 0.0
    cost: float = 0.0
    days: list[str] = field(default_factory=list)


def totals(days: Iterable[DailySpend]) -> dict[tuple[str, str], SpendTotals]:
    """The days of each (endpoint, variant) summed over the window."""
    found: dict[tuple[str, str], SpendTotals] = {}
    for day in days:
        one = found.setdefault((day.endpoint, day.variant), SpendTotals())
        one.replica_seconds += day.replica_seconds
        one.zero_s += day.zero_s
        one.cost += day.cost
        one.days.append(day.day)
    return found
