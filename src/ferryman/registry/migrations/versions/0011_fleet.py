"""Fleet integrity: the registry's identity, and the webhook outbox.

``registry_meta`` holds one row per key; ``id`` is a UUID made when this migration runs,
so every registry has one from its creation on (and an older one from its upgrade). The
running fleet carries it, and a control plane on another registry refuses to act on it.
``webhook_outbox`` holds every webhook delivery until it is delivered or given up, so a
control plane killed with deliveries queued sends them after its restart.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from ferryman.registry.tables import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_registry_meta"),
    )
    op.bulk_insert(meta, [{"key": "id", "value": str(uuid.uuid4())}])
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("webhook", sa.String(63), nullable=False),
        sa.Column("event", sa.String(63), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_outbox"),
    )
    op.create_index("ix_webhook_outbox_created_at", "webhook_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_outbox_created_at", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
    op.drop_table("registry_meta")
