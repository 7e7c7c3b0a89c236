"""Monitor: metric history (10 s samples per variant), alert rules, alerts and webhooks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.registry.tables import UTCDateTime

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SERIES_COLUMNS = (
    "qps", "error_rate", "p50_ms", "p99_ms", "batch_size", "replicas", "replicas_desired",
    "cpu_pct", "rss_bytes", "weight", "accuracy", "f1", "input_drift_psi", "prediction_drift",
    "restarts_10m",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(160), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in SERIES_COLUMNS),
        sa.PrimaryKeyConstraint("id", name="pk_metric_samples"),
    )
    op.create_index("ix_metric_samples_at", "metric_samples", ["at"])
    op.create_index("ix_metric_samples_endpoint_at", "metric_samples", ["endpoint", "at"])
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
        sa.UniqueConstraint("name", name="uq_alert_rules_name"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("rule", sa.String(63), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(160), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_endpoint", "alerts", ["endpoint"])
    op.create_index("ix_alerts_started_at", "alerts", ["started_at"])
    op.create_index("ix_alerts_state_rule", "alerts", ["state", "rule"])
    op.create_table(
        "alert_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(256), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_webhooks"),
        sa.UniqueConstraint("name", name="uq_alert_webhooks_name"),
    )


def downgrade() -> None:
    op.drop_table("alert_webhooks")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
    op.drop_table("metric_samples")
