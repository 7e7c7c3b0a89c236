"""What an endpoint costs now, and what each of its variants cost per day.

Each replica is counted as one instance of the configured shape (the price the user pays
for the machine a replica runs on); requests are priced from the recent rate. The daily
figures integrate the monitor's replica counts (``spend``) and say what scale-to-zero and
INT8 saved (``savings``).
"""

from __future__ import annotations

import math

from ferryman.capacity.catalogue import InstanceShape, load_catalogue
from ferryman.capacity.savings import (
    VariantSavings,
    int8_saved_replica_seconds,
    is_int8,
    matched_capacities,
    scale_to_zero_saved,
)
from ferryman.capacity.spend import (
    DAY_S,
    SPEND_SERIES,
    DailySpend,
    Span,
    daily_spend,
    spans,
    totals,
)
from ferryman.config import Settings
from ferryman.errors import InvalidInput
from ferryman.registry import Registry, VariantSpec
from ferryman.registry.records import Record


class EndpointCost(Record):
    endpoint: str
    replicas: float
    instance: str
    cost_per_hour: float
    qps: float | None
    cost_per_1k_requests: float | None
    """None when the endpoint answered no requests recently."""


def endpoint_cost(
    endpoint: str, replicas: float, qps: float | None, shape: InstanceShape
) -> EndpointCost:
    """Cost per hour = replicas x price; per 1,000 requests = that over an hour's requests.

    >>> s = InstanceShape(name="m", vcpus=2, memory_gib=4, price_per_hour=0.36)
    >>> endpoint_cost("digits", 2, 10.0, s).cost_per_1k_requests
    0.02
    """
    per_hour = replicas * shape.price_per_hour
    per_1k = None if not qps or qps <= 0 else round(per_hour / (qps * 3600) * 1000, 12)
    return EndpointCost(
        endpoint=endpoint,
        replicas=replicas,
        instance=shape.name,
        cost_per_hour=per_hour,
        qps=qps,
        cost_per_1k_requests=per_1k,
    )


def find_shape(shapes: tuple[InstanceShape, ...], name: str | None) -> InstanceShape:
    """The shape named ``name`` (the fleet's setting ``cost.instance``)."""
    known = ", ".join(shape.name for shape in shapes)
    if name is None:
        raise InvalidInput(
            "no instance shape is set for the fleet; set FERRYMAN_COST__INSTANCE to one of "
            f"the catalogue's: {known}"
        )
    for shape in shapes:
        if shape.name == name:
            return shape
    raise InvalidInput(f"instance {name!r} is not in the catalogue; its instances: {known}")


SAMPLE_MAX_AGE_S = 60.0
"""Older monitor samples than this are not "now" (the control loop samples every 10 s)."""


class CostReport(Record):
    instance: str | None
    price_per_hour: float | None
    note: str
    endpoints: tuple[EndpointCost, ...]


def _unpriced_note() -> str:
    return (
        "set FERRYMAN_COST__INSTANCE to an instance of the catalogue "
        "(FERRYMAN_COST__CATALOGUE, default the example one) to see costs"
    )


def fleet_costs(registry: Registry, settings: Settings, now_s: float) -> CostReport:
    """Every endpoint's cost now: replicas ready (else desired) and rate from the latest
    monitor samples, priced by the fleet's instance shape (``cost.instance``)."""
    if settings.cost.instance is None:
        return CostReport(instance=None, price_per_hour=None, note=_unpriced_note(), endpoints=())
    shape = find_shape(load_catalogue(settings.cost.catalogue), settings.cost.instance)
    recent: dict[str, dict[str, float]] = {}
    for sample in registry.history.latest():
        if now_s - sample.time_s <= SAMPLE_MAX_AGE_S:
            totals = recent.setdefault(sample.endpoint, {})
            for series in ("replicas", "qps"):
                if series in sample.values:
                    totals[series] = totals.get(series, 0.0) + sample.values[series]
    costs = []
    for record in registry.deployments.list():
        now = recent.get(record.endpoint, {})
        desired = sum(v.replicas for v in record.spec.variants)
        costs.append(
            endpoint_cost(
                record.endpoint, now.get("replicas", float(desired)), now.get("qps"), shape
            )
        )
    source = settings.cost.catalogue.name if settings.cost.catalogue else "the example catalogue"
    return CostReport(
        instance=shape.name,
        price_per_hour=shape.price_per_hour,
        note=f"each replica priced as one {shape.name} from {source}",
        endpoints=tuple(costs),
    )


MAX_DAYS = 31
GAP_INTERVALS = 3
"""A gap of more than this many monitor intervals between two samples is not counted."""


class CostHistory(Record):
    """Each variant's cost per UTC day over a window, and what scale-to-zero and INT8 saved."""

    instance: str | None
    price_per_hour: float | None
    note: str
    since_s: float
    """Unix seconds: midnight (UTC) of the window's first day, or the oldest sample kept."""
    max_gap_s: float
    """Longer gaps between two samples of a variant are not counted."""
    days: tuple[DailySpend, ...]
    savings: tuple[VariantSavings, ...]
    total_cost: float


def fleet_spend(
    registry: Registry, settings: Settings, now_s: float, days: int, endpoint: str | None = None
) -> CostHistory:
    """The cost of every variant (of ``endpoint`` only, when given) on the last ``days`` UTC
    days, today included, from the metric history kept."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days {days} is not in 1..{MAX_DAYS}; e.g. --days 7")
    today = math.floor(now_s / DAY_S) * DAY_S
    kept_s = now_s - settings.control.history_retention_s
    since_s = max(today - (days - 1) * DAY_S, kept_s)
    max_gap_s = GAP_INTERVALS * settings.control.monitor_interval_s
    if settings.cost.instance is None:
        return CostHistory(instance=None, price_per_hour=None, note=_unpriced_note(),
                           since_s=since_s, max_gap_s=max_gap_s, days=(), savings=(),
                           total_cost=0.0)  # fmt: skip
    shape = find_shape(load_catalogue(settings.cost.catalogue), settings.cost.instance)
    samples = registry.history.since(since_s, endpoint, SPEND_SERIES)
    held = list(spans(samples, max_gap_s))
    daily = daily_spend(held, shape.price_per_hour)
    variants = {
        (record.endpoint, v.name): v for record in registry.deployments.list()
        for v in record.spec.variants
    }  # fmt: skip
    savings = [
        _savings(
            registry,
            key,
            zero_s=summed.zero_s,
            held=held,
            spec=variants.get(key),
            price_per_hour=shape.price_per_hour,
        )
        for key, summed in sorted(totals(daily).items())
    ]
    hours = settings.control.history_retention_s / 3600
    return CostHistory(
        instance=shape.name,
        price_per_hour=shape.price_per_hour,
        note=f"each replica priced as one {shape.name}; replica counts held between samples "
        f"up to {max_gap_s:g} s apart; the history keeps {hours:g} h",
        since_s=since_s,
        max_gap_s=max_gap_s,
        days=tuple(daily),
        savings=tuple(savings),
        total_cost=sum(d.cost for d in daily),
    )


def _savings(
    registry: Registry,
    key: tuple[str, str],
    *,
    zero_s: float,
    held: list[Span],
    spec: VariantSpec | None,
    price_per_hour: float,
) -> VariantSavings:
    int8_saved, note = None, "not an INT8 variant"
    if spec is None:
        note = "the variant is no longer deployed: its kind is unknown"
    elif spec.kind is not None and is_int8(spec.kind):
        found = matched_capacities(registry.capacity.of(spec.model, spec.version), spec.kind)
        if isinstance(found, str):
            note = found
        else:
            int8_qps, fp32_qps = found
            mine = [s for s in held if (s.endpoint, s.variant) == key]
            seconds = int8_saved_replica_seconds(mine, int8_qps, fp32_qps)
            int8_saved = seconds / 3600 * price_per_hour
            note = (
                f"fp32 carries {fp32_qps:g} qps a replica, INT8 {int8_qps:g}: "
                f"{seconds:.0f} replica-seconds fewer"
            )
    return VariantSavings(
        endpoint=key[0],
        variant=key[1],
        scaled_to_zero_s=zero_s,
        scale_to_zero_saved=scale_to_zero_saved(zero_s, price_per_hour),
        int8_saved=int8_saved,
        int8_note=note,
    )
