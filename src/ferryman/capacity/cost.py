"""What an endpoint costs now: its replicas priced by the fleet's instance shape.

Each replica is counted as one instance of the configured shape (the price the user pays
for the machine a replica runs on); requests are priced from the recent rate.
"""

from __future__ import annotations

from ferryman.capacity.catalogue import InstanceShape, load_catalogue
from ferryman.config import Settings
from ferryman.errors import InvalidInput
from ferryman.registry import Registry
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


def fleet_costs(registry: Registry, settings: Settings, now_s: float) -> CostReport:
    """Every endpoint's cost now: replicas ready (else desired) and rate from the latest
    monitor samples, priced by the fleet's instance shape (``cost.instance``)."""
    if settings.cost.instance is None:
        note = (
            "set FERRYMAN_COST__INSTANCE to an instance of the catalogue "
            "(FERRYMAN_COST__CATALOGUE, default the example one) to see costs"
        )
        return CostReport(instance=None, price_per_hour=None, note=note, endpoints=())
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
