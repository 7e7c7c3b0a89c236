"""What the registry hands out: immutable records, the same over the SDK, CLI and API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from ferryman.signature import Signature

ParamValue = str | int | float | bool | None


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class ModelRecord(Record):
    name: str
    description: str
    created_by: str
    created_at: datetime
    archived_at: datetime | None
    latest_version: int | None
    aliases: dict[str, int]


class VersionRecord(Record):
    model: str
    version: int
    digest: str
    format: str
    size_bytes: int
    metrics: dict[str, float]
    params: dict[str, ParamValue]
    tags: dict[str, str]
    description: str
    signature: Signature
    data_fingerprint: str | None
    reference_digest: str | None
    parent_run: str | None
    created_by: str
    created_at: datetime
    archived_at: datetime | None
    aliases: tuple[str, ...]


class AliasRecord(Record):
    model: str
    alias: str
    version: int
    previous_version: int | None
    updated_by: str
    updated_at: datetime


class VariantStatus(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    REJECTED = "rejected"


class VariantRecord(Record):
    model: str
    version: int
    kind: str
    digest: str
    size_bytes: int
    status: VariantStatus
    gate: dict[str, Any]
    created_by: str
    created_at: datetime


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class MetricPoint(Record):
    step: int
    value: float
    recorded_at: datetime


class Checkpoint(Record):
    step: int
    digest: str
    size_bytes: int


class RunRecord(Record):
    id: str
    model: str | None
    recipe: str
    params: dict[str, ParamValue]
    status: RunStatus
    checkpoints: tuple[Checkpoint, ...]
    metrics: dict[str, tuple[MetricPoint, ...]]
    log_path: str | None
    error: str | None
    created_by: str
    started_at: datetime
    finished_at: datetime | None


class EventRecord(Record):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_key: str
    model: str | None
    details: dict[str, Any]
