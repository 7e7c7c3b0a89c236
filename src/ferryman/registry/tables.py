"""The registry's tables. Migrations create them; a test checks both agree.

Nothing is deleted: models and versions are archived, events are append-only (database
triggers refuse UPDATE and DELETE), versions are immutable but for ``archived_at``, and
foreign keys restrict deletes instead of cascading them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DIGEST = String(64)
NAME = String(63)
KEY = String(128)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(KEY)
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str | None] = mapped_column(NAME, index=True)
    recipe: Mapped[str] = mapped_column(KEY)
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    checkpoints: Mapped[list[Any]]
    log_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(KEY)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class RunMetricRow(Base):
    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"))
    key: Mapped[str] = mapped_column(KEY)
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[datetime]


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_versions_model_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer)
    artifact_digest: Mapped[str] = mapped_column(DIGEST)
    artifact_format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(Text)
    signature: Mapped[dict[str, Any]]
    data_fingerprint: Mapped[str | None] = mapped_column(String(128))
    reference_digest: Mapped[str | None] = mapped_column(DIGEST)
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"))
    created_by: Mapped[str] = mapped_column(KEY)
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class AliasRow(Base):
    __tablename__ = "aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="RESTRICT"), primary_key=True
    )
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"))
    updated_by: Mapped[str] = mapped_column(KEY)
    updated_at: Mapped[datetime]


class VariantRow(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("version_id", "kind", name="uq_variants_version_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32))
    artifact_digest: Mapped[str] = mapped_column(DIGEST)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    gate: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(KEY)
    created_at: Mapped[datetime]


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_object", "object_type", "object_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(KEY)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_key: Mapped[str] = mapped_column(String(256))
    model_name: Mapped[str | None] = mapped_column(NAME, index=True)
    details: Mapped[dict[str, Any]]


class DeploymentRow(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(NAME, unique=True)
    spec: Mapped[dict[str, Any]]
    generation: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(KEY)
    created_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(KEY)
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class RolloutRow(Base):
    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(NAME, index=True)
    model_name: Mapped[str] = mapped_column(NAME)
    strategy: Mapped[str] = mapped_column(String(16))
    baseline: Mapped[dict[str, Any]]
    candidate: Mapped[dict[str, Any]]
    plan: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    step_index: Mapped[int] = mapped_column(Integer)
    failed_checks: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, server_default="{}")
    created_by: Mapped[str] = mapped_column(KEY)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class PolicyRow(Base):
    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(NAME, unique=True)
    endpoint: Mapped[str] = mapped_column(NAME)
    trigger: Mapped[str] = mapped_column(String(80))
    strategy: Mapped[str] = mapped_column(String(16), server_default="canary")
    plan: Mapped[dict[str, Any]]
    offline_gate: Mapped[dict[str, Any] | None]
    last_event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    created_by: Mapped[str] = mapped_column(KEY)
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class PayloadRow(Base):
    """One answered inference request, collected from a replica's payload log."""

    __tablename__ = "payloads"
    __table_args__ = (UniqueConstraint("instance", "seq", name="uq_payloads_instance"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(NAME, index=True)
    variant: Mapped[str] = mapped_column(String(160))
    model_name: Mapped[str] = mapped_column(NAME)
    version: Mapped[int] = mapped_column(Integer)
    instance: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    """The client's own id for the request; never joined with feedback."""
    at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    predictions: Mapped[list[str] | None] = mapped_column(JSON)
    summaries: Mapped[dict[str, list[float]] | None] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    kind: Mapped[str | None] = mapped_column(String(16))
    """``completion`` for a language model's answer (rated up or down); NULL: a tensor answer."""
    pinned: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """The client named the version: kept and searchable, but no input drift or accuracy a
    rollout judges reads it (the client chose the variant; it is no sample of the split)."""


class PayloadTallyRow(Base):
    """What one replica instance's payload log did with the requests it answered, as its
    latest collected page said: the declared sample rate, and the totals since it started."""

    __tablename__ = "payload_tallies"

    instance: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint: Mapped[str] = mapped_column(NAME, index=True)
    variant: Mapped[str] = mapped_column(String(160))
    sample_rate: Mapped[float] = mapped_column(Float)
    answered: Mapped[int] = mapped_column(BigInteger)
    sampled_out: Mapped[int] = mapped_column(BigInteger)
    dropped: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class FeedbackRow(Base):
    """Ground truth for a request id, sent later by whoever learnt it."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    labels: Mapped[list[str]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(KEY)
    corrections: Mapped[int] = mapped_column(Integer, server_default="0")
    """How many times a later label replaced an earlier one for this request."""


class MetricSampleRow(Base):
    """One 10-second sample of a variant's series (a column each; NULL: no data)."""

    __tablename__ = "metric_samples"
    __table_args__ = (Index("ix_metric_samples_endpoint_at", "endpoint", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    endpoint: Mapped[str] = mapped_column(NAME)
    variant: Mapped[str] = mapped_column(String(160))
    qps: Mapped[float | None] = mapped_column(Float)
    error_rate: Mapped[float | None] = mapped_column(Float)
    client_error_rate: Mapped[float | None] = mapped_column(Float)
    p50_ms: Mapped[float | None] = mapped_column(Float)
    p99_ms: Mapped[float | None] = mapped_column(Float)
    batch_size: Mapped[float | None] = mapped_column(Float)
    replicas: Mapped[float | None] = mapped_column(Float)
    replicas_desired: Mapped[float | None] = mapped_column(Float)
    cpu_pct: Mapped[float | None] = mapped_column(Float)
    rss_bytes: Mapped[float | None] = mapped_column(Float)
    weight: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    f1: Mapped[float | None] = mapped_column(Float)
    input_drift_psi: Mapped[float | None] = mapped_column(Float)
    prediction_drift: Mapped[float | None] = mapped_column(Float)
    restarts_10m: Mapped[float | None] = mapped_column(Float)
    ttft_p50_ms: Mapped[float | None] = mapped_column(Float)
    ttft_p99_ms: Mapped[float | None] = mapped_column(Float)
    tpot_p50_ms: Mapped[float | None] = mapped_column(Float)
    tpot_p99_ms: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    prompt_tokens_per_s: Mapped[float | None] = mapped_column(Float)
    in_flight: Mapped[float | None] = mapped_column(Float)
    thumbs_up_rate: Mapped[float | None] = mapped_column(Float)


class AlertRuleRow(Base):
    """A user's alert rule, or the override of a default rule of the same name."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    rule: Mapped[dict[str, Any]]
    updated_by: Mapped[str] = mapped_column(KEY)
    updated_at: Mapped[datetime]


class AlertRow(Base):
    """One alert: fired when its rule held, resolved when it stopped holding."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_state_rule", "state", "rule"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rule: Mapped[str] = mapped_column(NAME)
    level: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(NAME, index=True)
    variant: Mapped[str] = mapped_column(String(160))
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(index=True)
    resolved_at: Mapped[datetime | None]


class AlertWebhookRow(Base):
    """Where alert events are posted; the secret signs them and is never handed out."""

    __tablename__ = "alert_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(256))
    updated_by: Mapped[str] = mapped_column(KEY)
    updated_at: Mapped[datetime]


class DeliveryRow(Base):
    """A signed delivery received from another system (MLflow), remembered so that a replay
    of the same bytes within its signature's window is refused, across restarts too."""

    __tablename__ = "webhook_deliveries"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


class RegistryMetaRow(Base):
    """One fact about the registry itself; ``id`` is its identity, made with it."""

    __tablename__ = "registry_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class WebhookOutboxRow(Base):
    """A webhook delivery not yet delivered nor given up: sent again after a restart."""

    __tablename__ = "webhook_outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    webhook: Mapped[str] = mapped_column(NAME)
    event: Mapped[str] = mapped_column(NAME)
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(index=True)


class ApiTokenRow(Base):
    """A scoped token: only the SHA-256 of its secret is kept, never the secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    role: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str | None] = mapped_column(NAME)
    digest: Mapped[str] = mapped_column(DIGEST, unique=True)
    created_by: Mapped[str] = mapped_column(KEY)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class CapacityRow(Base):
    """The highest rate one serving configuration of a variant carried within a p99 target."""

    __tablename__ = "capacity_results"
    __table_args__ = (
        UniqueConstraint(
            "version_id", "variant", "max_batch_size", "max_delay_ms", "intra_op_threads",
            "p99_target_ms", name="uq_capacity_results_configuration",
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"))
    variant: Mapped[str] = mapped_column(String(32))
    max_batch_size: Mapped[int] = mapped_column(Integer)
    max_delay_ms: Mapped[float] = mapped_column(Float)
    intra_op_threads: Mapped[int] = mapped_column(Integer)
    p99_target_ms: Mapped[float] = mapped_column(Float)
    max_qps: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float | None] = mapped_column(Float)
    cpu_pct: Mapped[float | None] = mapped_column(Float)
    rss_bytes: Mapped[float | None] = mapped_column(Float)
    stop_reason: Mapped[str] = mapped_column(String(200))
    steps: Mapped[list[Any]]
    cpu_count: Mapped[int] = mapped_column(Integer)
    measured_by: Mapped[str] = mapped_column(KEY)
    measured_at: Mapped[datetime]
