"""The SDK over the control-plane API: the same operations as LocalBackend, over HTTP."""

from __future__ import annotations

import json
import ssl
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from ferryman.errors import FerrymanError, error_for_status
from ferryman.names import validate_name
from ferryman.registry import (
    AliasRecord,
    DeploymentRecord,
    DeploymentSpec,
    EventRecord,
    ModelRecord,
    VariantRecord,
    VersionMetadata,
    VersionRecord,
    VersionRef,
)

T = TypeVar("T")

_VERSIONS = TypeAdapter(list[VersionRecord])
_MODELS = TypeAdapter(list[ModelRecord])
_VARIANTS = TypeAdapter(list[VariantRecord])
_EVENTS = TypeAdapter(list[EventRecord])
_DEPLOYMENTS = TypeAdapter(list[DeploymentRecord])


class HttpBackend:
    """A :class:`RegistryBackend` that calls ``/api/v1`` with a bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        actor: str | None = None,
        verify: bool | str | ssl.SSLContext = True,
        timeout_s: float = 60.0,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"}
        if actor:
            headers["ferryman-actor"] = actor
        if isinstance(verify, str):  # a CA bundle's path
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers=headers,
            verify=verify,
            timeout=timeout_s,
        )

    def register(self, model: str, data: bytes, metadata: VersionMetadata) -> VersionRecord:
        header = json.dumps(metadata.model_dump(mode="json", exclude_defaults=True))
        response = self._call(
            "POST",
            f"/models/{_segment(model)}/versions",
            content=data,
            headers={"content-type": "application/octet-stream", "ferryman-metadata": header},
        )
        return VersionRecord.model_validate(response)

    def list_models(self) -> list[ModelRecord]:
        return _MODELS.validate_python(self._call("GET", "/models"))

    def list_versions(self, model: str) -> list[VersionRecord]:
        return _VERSIONS.validate_python(self._call("GET", f"/models/{_segment(model)}/versions"))

    def get_version(self, model: str, ref: VersionRef) -> VersionRecord:
        path = f"/models/{_segment(model)}/versions/{_segment(ref)}"
        return VersionRecord.model_validate(self._call("GET", path))

    def list_variants(self, model: str, ref: VersionRef) -> list[VariantRecord]:
        path = f"/models/{_segment(model)}/versions/{_segment(ref)}/variants"
        return _VARIANTS.validate_python(self._call("GET", path))

    def set_alias(
        self, model: str, alias: str, ref: VersionRef, *, force: bool = False
    ) -> AliasRecord:
        path = f"/models/{_segment(model)}/aliases/{_segment(alias)}"
        body = {"version": ref, "force": force}
        return AliasRecord.model_validate(self._call("PUT", path, json=body))

    def remove_alias(self, model: str, alias: str) -> None:
        self._call("DELETE", f"/models/{_segment(model)}/aliases/{_segment(alias)}")

    def archive_version(self, model: str, ref: VersionRef) -> VersionRecord:
        path = f"/models/{_segment(model)}/versions/{_segment(ref)}/archive"
        return VersionRecord.model_validate(self._call("POST", path))

    def list_events(self, model: str | None, limit: int) -> list[EventRecord]:
        params: dict[str, Any] = {"limit": limit}
        if model is not None:
            params["model"] = model
        return _EVENTS.validate_python(self._call("GET", "/events", params=params))

    def put_deployment(self, spec: DeploymentSpec) -> DeploymentRecord:
        path = f"/deployments/{_segment(spec.endpoint)}"
        body = spec.model_dump(mode="json")
        return DeploymentRecord.model_validate(self._call("PUT", path, json=body))

    def get_deployment(self, endpoint: str) -> DeploymentRecord:
        return DeploymentRecord.model_validate(
            self._call("GET", f"/deployments/{_segment(endpoint)}")
        )

    def list_deployments(self) -> list[DeploymentRecord]:
        return _DEPLOYMENTS.validate_python(self._call("GET", "/deployments"))

    def remove_deployment(self, endpoint: str) -> DeploymentRecord:
        path = f"/deployments/{_segment(endpoint)}"
        return DeploymentRecord.model_validate(self._call("DELETE", path))

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise FerrymanError(f"cannot reach the control plane: {exc}") from None
        if response.is_success:
            return response.json() if response.content else None
        try:
            message = str(response.json()["error"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code} from the control plane"
        raise error_for_status(response.status_code, message)


def _segment(value: VersionRef) -> str:
    """One URL path segment, validated first: names and version numbers only."""
    text = str(value)
    if not (text.isascii() and text.isdigit()):
        validate_name(text)
    return quote(text, safe="")
