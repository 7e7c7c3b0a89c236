"""Rollout strategies: a rollout's own state (phase, test results), a policy's strategy, and
an index that reads one object's story from the audit log (a rollout's timeline).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("state", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("policies") as batch:
        batch.add_column(
            sa.Column("strategy", sa.String(16), nullable=False, server_default="canary")
        )
    op.create_index("ix_events_object", "events", ["object_type", "object_key"])


def downgrade() -> None:
    op.drop_index("ix_events_object", "events")
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("strategy")
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("state")
