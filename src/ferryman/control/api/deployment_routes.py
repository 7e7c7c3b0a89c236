"""``/api/v1/deployments``: the desired state of endpoints."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.control.reconcile.validation import check_routable
from ferryman.errors import InvalidInput
from ferryman.registry import Autoscaling, DeploymentRecord, DeploymentSpec, scaled

router = APIRouter(prefix="/api/v1")


class ScaleRequest(BaseModel):
    """Either a fixed replica count for every variant, or autoscaling bounds."""

    replicas: int | None = Field(default=None, ge=0, le=64)
    autoscaling: Autoscaling | None = None


@router.get("/deployments")
def list_deployments(registry: RegistryDep) -> list[DeploymentRecord]:
    return registry.deployments.list()


@router.get("/deployments/{endpoint}")
def get_deployment(endpoint: str, registry: RegistryDep) -> DeploymentRecord:
    return registry.deployments.get(endpoint)


@router.put("/deployments/{endpoint}")
def put_deployment(
    endpoint: str, spec: DeploymentSpec, registry: RegistryDep, actor: ActorDep
) -> DeploymentRecord:
    if spec.endpoint != endpoint:
        raise InvalidInput(f"the body names endpoint {spec.endpoint!r}, the path {endpoint!r}")
    return registry.deployments.put(check_routable(spec), actor)


@router.post("/deployments/{endpoint}/scale")
def scale_deployment(
    endpoint: str,
    request: ScaleRequest,
    registry: RegistryDep,
    actor: ActorDep,
) -> DeploymentRecord:
    spec = registry.deployments.get(endpoint).spec
    return registry.deployments.put(scaled(spec, request.replicas, request.autoscaling), actor)


@router.delete("/deployments/{endpoint}")
def remove_deployment(endpoint: str, registry: RegistryDep, actor: ActorDep) -> DeploymentRecord:
    return registry.deployments.remove(endpoint, actor)
