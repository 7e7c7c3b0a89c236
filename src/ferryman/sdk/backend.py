"""Where the SDK's calls go: this process's registry now, the control-plane API later.

:class:`RegistryBackend` is the seam. :class:`LocalBackend` answers from a data dir (or a
database URL) in this process; an HTTP backend speaking ``/api/v1`` with a bearer token
implements the same methods once the control plane exists, so code written against
:class:`ferryman.Client` does not change when it moves from a laptop to a server.
"""

from __future__ import annotations

from typing import Protocol

from ferryman.control.reconcile.validation import check_routable
from ferryman.registry import (
    AliasRecord,
    DeploymentRecord,
    DeploymentSpec,
    EventRecord,
    ModelRecord,
    Registry,
    VariantRecord,
    VersionMetadata,
    VersionRecord,
    VersionRef,
)


class RegistryBackend(Protocol):
    """The operations the SDK offers, without transport details or the actor."""

    def register(self, model: str, data: bytes, metadata: VersionMetadata) -> VersionRecord: ...
    def list_models(self) -> list[ModelRecord]: ...
    def list_versions(self, model: str) -> list[VersionRecord]: ...
    def get_version(self, model: str, ref: VersionRef) -> VersionRecord: ...
    def list_variants(self, model: str, ref: VersionRef) -> list[VariantRecord]: ...
    def set_alias(
        self, model: str, alias: str, ref: VersionRef, *, force: bool = False
    ) -> AliasRecord: ...
    def remove_alias(self, model: str, alias: str) -> None: ...
    def archive_version(self, model: str, ref: VersionRef) -> VersionRecord: ...
    def list_events(self, model: str | None, limit: int) -> list[EventRecord]: ...
    def put_deployment(self, spec: DeploymentSpec) -> DeploymentRecord: ...
    def get_deployment(self, endpoint: str) -> DeploymentRecord: ...
    def list_deployments(self) -> list[DeploymentRecord]: ...
    def remove_deployment(self, endpoint: str) -> DeploymentRecord: ...
    def close(self) -> None: ...


class LocalBackend:
    """A :class:`RegistryBackend` over a :class:`Registry` in this process."""

    def __init__(self, registry: Registry, actor: str) -> None:
        self.registry = registry
        self._actor = actor

    def register(self, model: str, data: bytes, metadata: VersionMetadata) -> VersionRecord:
        return self.registry.register(model, data, self._actor, metadata)

    def list_models(self) -> list[ModelRecord]:
        return self.registry.list_models()

    def list_versions(self, model: str) -> list[VersionRecord]:
        return self.registry.list_versions(model)

    def get_version(self, model: str, ref: VersionRef) -> VersionRecord:
        return self.registry.get_version(model, ref)

    def list_variants(self, model: str, ref: VersionRef) -> list[VariantRecord]:
        return self.registry.list_variants(model, ref)

    def set_alias(
        self, model: str, alias: str, ref: VersionRef, *, force: bool = False
    ) -> AliasRecord:
        return self.registry.set_alias(model, alias, ref, self._actor, force=force)

    def remove_alias(self, model: str, alias: str) -> None:
        self.registry.remove_alias(model, alias, self._actor)

    def archive_version(self, model: str, ref: VersionRef) -> VersionRecord:
        return self.registry.archive_version(model, ref, self._actor)

    def list_events(self, model: str | None, limit: int) -> list[EventRecord]:
        return self.registry.list_events(model, limit)

    def put_deployment(self, spec: DeploymentSpec) -> DeploymentRecord:
        return self.registry.deployments.put(check_routable(spec), self._actor)

    def get_deployment(self, endpoint: str) -> DeploymentRecord:
        return self.registry.deployments.get(endpoint)

    def list_deployments(self) -> list[DeploymentRecord]:
        return self.registry.deployments.list()

    def remove_deployment(self, endpoint: str) -> DeploymentRecord:
        return self.registry.deployments.remove(endpoint, self._actor)

    def close(self) -> None:
        self.registry.close()
