"""The MLflow model-registry webhook: teams that keep MLflow still get Ferryman's rollouts.

MLflow (3.x) POSTs ``{"entity", "action", "timestamp", "data"}`` with three headers:
``X-MLflow-Delivery-Id``, ``X-MLflow-Timestamp`` (Unix seconds) and ``X-MLflow-Signature``
= ``v1,`` + base64 of HMAC-SHA256 over ``"{delivery_id}.{timestamp}.{body}"`` with the
webhook's shared secret. :func:`verify` checks all three (401 for a missing or wrong
signature, 400 for a missing, malformed or stale timestamp: a replay guard).

Then :class:`MlflowImporter` acts on two events and ignores the rest:

- ``model_version.created``: the version's ``source`` is imported only if it names a local
  ONNX file (or an MLflow ONNX model directory holding ``model.onnx``) inside one of
  ``control.mlflow_import_dirs`` — canonicalised, contained, no symlink anywhere, opened
  with ``O_NOFOLLOW``, size-bounded — and it passes the format gate. Nothing is ever
  fetched: ``models:/``, ``runs:/``, ``s3://`` and ``http(s)://`` sources are recorded as
  not imported, with the reason (RELIABILITY S5). An imported version is registered like
  any other, so a model's policy rolls it out.
- ``model_version_alias.created``: the alias moves to the Ferryman version imported from
  that MLflow version (a policy on ``alias:NAME`` then fires).

Every delivery acted on leaves an event (``webhook.imported``, ``webhook.aliased`` or
``webhook.skipped`` with its reason). Two deliveries are refused rather than acted on: a
delivery id already received (409, see :class:`~ferryman.registry.deliveries.Deliveries`:
a replay of signed bytes), and an alias move stamped before the alias's last change (409
and a ``webhook.refused`` event: the registry's newer state stands).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ferryman.config import ControlSettings
from ferryman.errors import Conflict, FerrymanError, InvalidInput, Unauthenticated
from ferryman.names import validate_name
from ferryman.redaction import redact_url
from ferryman.registry import Registry, build_metadata
from ferryman.registry.metadata import validate_alias

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
ACTOR = "mlflow-webhook"
MODEL_FILE = "model.onnx"  # what MLflow's onnx flavour writes into a model directory
_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id, and the event it carries."""

    id: str
    entity: str
    action: str
    data: dict[str, Any]
    sent_at: datetime


class NotImported(InvalidInput):
    """Why a delivery changed nothing (recorded, answered 200: MLflow must not retry)."""


class Refused(Conflict):
    """A delivery that would undo newer state (recorded, answered 409)."""


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The signature MLflow sends for ``body``: ``v1,<base64 HMAC-SHA256>``."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str | None,
    headers: Mapping[str, str],
    body: bytes,
    now_s: float,
    tolerance_s: float,
) -> Delivery:
    """The delivery in ``body`` if its signature and timestamp hold; else 401 or 400."""
    if not secret:
        raise Unauthenticated(
            "no MLflow webhook secret is configured (control.mlflow_webhook_secret), so no "
            "signature can be checked; refused"
        )
    signature = headers.get(SIGNATURE_HEADER)
    if not signature:
        raise Unauthenticated(f"the {SIGNATURE_HEADER} header is missing; unsigned, refused")
    delivery_id = headers.get(DELIVERY_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if _DELIVERY_ID.fullmatch(delivery_id) is None:
        raise InvalidInput(f"the {DELIVERY_HEADER} header must be 1-64 letters, digits or '-'")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise InvalidInput(f"the {TIMESTAMP_HEADER} header must be Unix seconds, e.g. 1767225600")
    if not _matches(signature, sign(secret, delivery_id, timestamp, body)):
        raise Unauthenticated("the MLflow webhook signature does not match; check the secret")
    age_s = now_s - int(timestamp)
    if abs(age_s) > tolerance_s:
        raise InvalidInput(
            f"the delivery is stamped {age_s:+.0f} s from now; more than {tolerance_s:g} s either "
            "way is refused (replay guard: check the clocks)"
        )
    return _parse(delivery_id, body, datetime.fromtimestamp(int(timestamp), UTC))


def _matches(presented: str, expected: str) -> bool:
    """Compare in constant time; MLflow may send several space-separated signatures."""
    return any(
        hmac.compare_digest(candidate.encode(), expected.encode())
        for candidate in presented.split()[:8]
    )


def _parse(delivery_id: str, body: bytes, sent_at: datetime) -> Delivery:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInput("the delivery is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise InvalidInput('the delivery must be {"entity", "action", "timestamp", "data": {...}}')
    entity, action = document.get("entity"), document.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise InvalidInput("the delivery's entity and action must be strings")
    return Delivery(delivery_id, entity[:64], action[:64], document["data"], sent_at)


class MlflowImporter:
    """Acts on verified deliveries against the registry, within what settings allow."""

    def __init__(self, registry: Registry, settings: ControlSettings) -> None:
        self._registry = registry
        self._settings = settings

    def handle(self, delivery: Delivery) -> dict[str, Any]:
        """Import, alias, or say why not; the answer's ``status`` says which."""
        kind = (delivery.entity, delivery.action)
        if kind not in {("model_version", "created"), ("model_version_alias", "created")}:
            return {"status": "ignored", "reason": f"{delivery.entity}.{delivery.action}"}
        model = None
        try:
            name, version = _field(delivery.data, "name"), _field(delivery.data, "version")
            if _VERSION.fullmatch(version) is None:
                raise NotImported(f"MLflow version {version[:20]!r} is not a version number")
            model = self._model_for(name)
            if kind[0] == "model_version":
                return self._import(delivery, model, name, version)
            return self._alias(delivery, model, name, version)
        except Refused:
            raise
        except (InvalidInput, Conflict) as exc:  # permanent: a 5xx is left to MLflow's retry
            self._record(delivery, "webhook.skipped", model, {"reason": exc.message})
            return {"status": "skipped", "reason": exc.message}

    def _model_for(self, mlflow_name: str) -> str:
        mapped = self._settings.mlflow_models.get(mlflow_name, mlflow_name)
        try:
            return validate_name(mapped, "model name")
        except InvalidInput:
            raise NotImported(
                f"MLflow model {mlflow_name[:80]!r} has no valid Ferryman name; map it in "
                "control.mlflow_models"
            ) from None

    def _import(self, delivery: Delivery, model: str, name: str, version: str) -> dict[str, Any]:
        known = self._imported(model, name, version)
        if known is not None:
            return {"status": "duplicate", "model": model, "version": known}
        source = _field(delivery.data, "source", limit=1024)
        path = resolve_source(source, self._settings.mlflow_import_dirs)
        data = read_bounded(path, self._settings.max_upload_bytes)
        tags = {"mlflow.name": name[:1024], "mlflow.version": version,
                "mlflow.source": source[:1024]}  # fmt: skip
        run_id = delivery.data.get("run_id")
        if isinstance(run_id, str) and re.fullmatch(r"[A-Za-z0-9]{1,64}", run_id):
            tags["mlflow.run_id"] = run_id
        description = delivery.data.get("description")
        metadata = build_metadata(
            tags=tags, description=description[:10_000] if isinstance(description, str) else ""
        )
        record = self._registry.register(model, data, ACTOR, metadata)
        details = {"mlflow": f"{name[:80]} v{version}", "version": record.version}
        self._record(delivery, "webhook.imported", model, details)
        return {"status": "imported", "model": model, "version": record.version}

    def _alias(self, delivery: Delivery, model: str, name: str, version: str) -> dict[str, Any]:
        alias = validate_alias(_field(delivery.data, "alias"))
        target = self._imported(model, name, version)
        if target is None:
            raise NotImported(
                f"MLflow {name[:80]} v{version} was never imported, so alias {alias!r} has no "
                "Ferryman version to point at"
            )
        try:
            self._registry.set_alias(model, alias, target, ACTOR, as_of=delivery.sent_at)
        except Conflict as exc:  # stale, or an archived target: refused, the reason recorded
            self._record(delivery, "webhook.refused", model, {"reason": exc.message})
            raise Refused(exc.message) from None
        details = {"alias": alias, "version": target, "mlflow": f"{name[:80]} v{version}"}
        self._record(delivery, "webhook.aliased", model, details)
        return {"status": "aliased", "model": model, "alias": alias, "version": target}

    def _imported(self, model: str, name: str, version: str) -> int | None:
        """The Ferryman version imported from MLflow ``name`` ``version``, if any."""
        try:
            versions = self._registry.list_versions(model, include_archived=True)
        except FerrymanError:
            return None
        for record in versions:
            tags = record.tags
            if tags.get("mlflow.name") == name and tags.get("mlflow.version") == version:
                return record.version
        return None

    def _record(
        self, delivery: Delivery, action: str, model: str | None, details: dict[str, Any]
    ) -> None:
        subject = ("webhook", f"mlflow/{delivery.id}", model)
        event = f"{delivery.entity}.{delivery.action}"
        self._registry.record_event(ACTOR, action, subject, {"event": event, **details})


def _field(data: Mapping[str, Any], key: str, limit: int = 256) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise NotImported(f"the delivery's data.{key} is missing or not a string of <= {limit}")
    return value


def resolve_source(source: str, roots: tuple[Path, ...]) -> Path:
    """The local ONNX file an MLflow ``source`` names, if it lies inside one of ``roots``.

    Only ``file:`` URIs and absolute paths are considered; the path (or ``model.onnx`` in the
    directory it names) must exist as a regular file, with no symlink on the way, under the
    canonical form of a root. Anything else raises :class:`NotImported` with the reason, which
    quotes the source as :func:`~ferryman.redaction.redact_url` shows it (``s3://key:secret@…``
    and ``?token=…`` sources are common).
    """
    if not roots:
        raise NotImported("no control.mlflow_import_dirs is configured: nothing is imported")
    shown = redact_url(source)[:120]  # quoted without the credentials it may carry
    try:
        parts = urlsplit(source)
    except ValueError:
        raise NotImported(f"source {shown!r} cannot be parsed as a path or URI") from None
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        raw = unquote(parts.path)
    elif parts.scheme == "" and not parts.netloc:
        raw = source
    else:
        raise NotImported(
            f"source {shown!r} is not a local file; remote and registry URIs are never "
            "fetched (log the ONNX model to a directory under control.mlflow_import_dirs)"
        )
    if "\0" in raw or not raw.startswith("/") or ".." in Path(raw).parts:
        raise NotImported(f"source {shown!r} is not a plain absolute path")
    path = Path(raw)
    _refuse_links(path)
    if path.is_dir():
        path = path / MODEL_FILE
        _refuse_links(path)
    if not any(path.is_relative_to(Path(os.path.realpath(root))) for root in roots):
        raise NotImported(f"source {shown!r} is outside control.mlflow_import_dirs")
    return path


def _refuse_links(path: Path) -> None:
    """Refuse a path with a symlink anywhere on it, or whose last part is not there."""
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            raise NotImported(f"{path.name!r} does not exist at the source path") from None
        if stat.S_ISLNK(mode):
            raise NotImported(f"the source path has a symlink ({part!r}); refused")


def read_bounded(path: Path, limit_bytes: int) -> bytes:
    """The bytes of a regular file, opened without following links, at most ``limit_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise NotImported(f"{path.name!r} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NotImported(f"{path.name!r} is not a regular file")
        data = handle.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise NotImported(f"{path.name!r} is larger than control.max_upload_bytes ({limit_bytes})")
    return data
