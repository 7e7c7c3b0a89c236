"""Checks on a deployment spec that need the gateway's route rules (weights, rules, shadow)."""

from __future__ import annotations

from pydantic import ValidationError

from ferryman.control.reconcile.plan import route_table
from ferryman.errors import InvalidInput
from ferryman.registry import DeploymentSpec


def check_routable(spec: DeploymentSpec) -> DeploymentSpec:
    """Refuse a spec the gateway could not apply, with the reason; return it otherwise."""
    try:
        route_table([spec], {}, generation=0)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise InvalidInput(f"deployment {spec.endpoint!r}: {problem['msg']}") from None
    return spec
