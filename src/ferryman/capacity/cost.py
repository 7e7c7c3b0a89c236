"""What an endpoint costs now: its replicas priced by the fleet's instance shape.

Each replica is counted as one instance of the configured shape (the price the user pays
for the machine a replica runs on); requests are priced from the recent rate.
"""

from __future__ import annotations

from ferryman.capacity.catalogue import InstanceShape
from ferryman.errors import InvalidInput
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
