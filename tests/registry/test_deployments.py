"""Deployments as persisted desired state, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from ferryman.errors import Conflict, InvalidInput, NotFound, VersionNotFound
from ferryman.registry import (
    Autoscaling,
    DeploymentSpec,
    Registry,
    VariantSpec,
    VariantStatus,
)


@pytest.fixture
def two_versions(registry: Registry, onnx_bytes: Callable[..., bytes]) -> Registry:
    registry.register("digits", onnx_bytes(), "alice")
    registry.register("digits", onnx_bytes(seed_value=1.0), "alice")
    registry.add_variant("digits", 2, "onnx-int8", onnx_bytes(seed_value=2.0), "alice",
                         status=VariantStatus.PASSED)  # fmt: skip
    registry.add_variant("digits", 1, "onnx-int8", onnx_bytes(seed_value=3.0), "alice",
                         gate={"reason": "accuracy dropped 2.1 pp > 1 pp"},
                         status=VariantStatus.REJECTED)  # fmt: skip
    return registry


def test_deploy_change_and_remove(two_versions: Registry) -> None:
    deployments = two_versions.deployments
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),))
    created = deployments.put(spec, "alice")
    assert (created.generation, created.spec) == (1, spec)

    canary = spec.model_copy(
        update={
            "variants": (
                VariantSpec(model="digits", version=1, weight=90),
                VariantSpec(model="digits", version=2, kind="onnx-int8", weight=10),
            )
        }
    )
    updated = deployments.put(canary, "bob")
    assert updated.generation == 2
    assert [v.name for v in updated.spec.variants] == ["v1", "v2-onnx-int8"]
    assert deployments.get("digits") == updated
    assert [d.endpoint for d in deployments.list()] == ["digits"]

    removed = deployments.remove("digits", "alice")
    assert removed.generation == 3
    assert deployments.list() == []
    with pytest.raises(NotFound, match="not deployed"):
        deployments.get("digits")
    again = deployments.put(spec, "alice")
    assert again.generation == 4
    actions = [
        e.action for e in two_versions.list_events("digits") if e.object_type == "deployment"
    ]
    assert actions == [
        "deployment.created", "deployment.updated", "deployment.removed", "deployment.created",
    ]  # fmt: skip


def test_only_deployable_variants_are_accepted(two_versions: Registry) -> None:
    deployments = two_versions.deployments

    def spec(**variant: object) -> DeploymentSpec:
        return DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", **variant),))

    with pytest.raises(InvalidInput, match=r"rejected \(accuracy dropped 2.1 pp"):
        deployments.put(spec(version=1, kind="onnx-int8"), "alice")
    with pytest.raises(VersionNotFound, match="has no version 9"):
        deployments.put(spec(version=9), "alice")
    with pytest.raises(VersionNotFound, match="no variant 'onnx-fp16'"):
        deployments.put(spec(version=2, kind="onnx-fp16"), "alice")
    two_versions.archive_version("digits", 1, "alice")
    with pytest.raises(Conflict, match="archived"):
        deployments.put(spec(version=1), "alice")
    assert deployments.list() == []


def test_specs_validate_their_own_shape() -> None:
    with pytest.raises(ValidationError):
        DeploymentSpec(endpoint="digits", variants=())
    with pytest.raises(ValidationError, match="min_replicas 3 > max_replicas 2"):
        Autoscaling(min_replicas=3, max_replicas=2)
    with pytest.raises(ValidationError):
        VariantSpec(model="digits", version=1, weight=101)
