"""The Python SDK: what users import to register and inspect their models."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ferryman.config import Settings, load_settings
from ferryman.errors import InvalidInput
from ferryman.registry import (
    AliasRecord,
    Autoscaling,
    DeploymentRecord,
    DeploymentSpec,
    EventRecord,
    ModelRecord,
    Registry,
    VariantRecord,
    VersionRecord,
    VersionRef,
    build_metadata,
    scaled,
)
from ferryman.registry.records import ParamValue
from ferryman.sdk.backend import LocalBackend, RegistryBackend
from ferryman.sdk.http import HttpBackend


class Client:
    """Register models and read the registry, locally now and over HTTP later.

    >>> import tempfile
    >>> with Client.local(data_dir=tempfile.mkdtemp()) as client:
    ...     client.list_models()
    []
    """

    def __init__(self, backend: RegistryBackend) -> None:
        self._backend = backend

    @classmethod
    def local(
        cls,
        data_dir: str | Path | None = None,
        database_url: str | None = None,
        settings: Settings | None = None,
    ) -> Client:
        """A client on this machine's data dir (SQLite by default) or a database URL."""
        settings = settings or load_settings(data_dir=data_dir, database_url=database_url)
        return cls(LocalBackend(Registry.open(settings), settings.user))

    @classmethod
    def remote(
        cls,
        url: str,
        token: str,
        actor: str | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> Client:
        """A client of a control plane (``ferryman up``) at ``url``, e.g. http://127.0.0.1:7070."""
        return cls(HttpBackend(url, token, actor, verify))

    def register(
        self,
        path: str | Path,
        model: str,
        *,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        description: str = "",
    ) -> VersionRecord:
        """Register the ONNX file at ``path`` as the next version of ``model``."""
        metadata = build_metadata(
            metrics=dict(metrics or {}),
            params=dict(params or {}),
            tags=dict(tags or {}),
            aliases=tuple(aliases),
            description=description,
        )
        return self._backend.register(model, read_model_file(Path(path)), metadata)

    def list_models(self) -> list[ModelRecord]:
        return self._backend.list_models()

    def list_versions(self, model: str) -> list[VersionRecord]:
        return self._backend.list_versions(model)

    def get_version(self, model: str, version: VersionRef = "latest") -> VersionRecord:
        """A version by number, alias (``"production"``) or ``"latest"``."""
        return self._backend.get_version(model, version)

    def list_variants(self, model: str, version: VersionRef = "latest") -> list[VariantRecord]:
        return self._backend.list_variants(model, version)

    def set_alias(
        self, model: str, alias: str, version: VersionRef, *, force: bool = False
    ) -> AliasRecord:
        """Point ``alias`` at ``version``; the move is recorded in the audit log.

        ``production`` is refused on a version whose inputs its clients could not send,
        unless ``force``.
        """
        return self._backend.set_alias(model, alias, version, force=force)

    def remove_alias(self, model: str, alias: str) -> None:
        self._backend.remove_alias(model, alias)

    def archive_version(self, model: str, version: VersionRef) -> VersionRecord:
        return self._backend.archive_version(model, version)

    def list_events(self, model: str | None = None, limit: int = 50) -> list[EventRecord]:
        """The newest ``limit`` audit-log events, oldest first."""
        return self._backend.list_events(model, limit)

    def deploy(self, spec: DeploymentSpec) -> DeploymentRecord:
        """Create or change an endpoint's desired state; the reconciler makes it so."""
        return self._backend.put_deployment(spec)

    def get_deployment(self, endpoint: str) -> DeploymentRecord:
        return self._backend.get_deployment(endpoint)

    def list_deployments(self) -> list[DeploymentRecord]:
        return self._backend.list_deployments()

    def scale(
        self, endpoint: str, replicas: int | None = None, autoscaling: Autoscaling | None = None
    ) -> DeploymentRecord:
        """Fixed replicas per variant, or autoscaling bounds."""
        spec = self._backend.get_deployment(endpoint).spec
        return self._backend.put_deployment(scaled(spec, replicas, autoscaling))

    def undeploy(self, endpoint: str) -> DeploymentRecord:
        return self._backend.remove_deployment(endpoint)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, *exc_info: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        self.close()


def read_model_file(path: Path) -> bytes:
    """The bytes of a model file the user named, refused with a reason if it is not one."""
    if not path.exists():
        raise InvalidInput(f"{path} does not exist")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a regular file; give the path of a .onnx model")
    return path.read_bytes()
