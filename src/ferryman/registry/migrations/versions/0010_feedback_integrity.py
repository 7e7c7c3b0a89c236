"""Feedback integrity: a request's correlation id (the client's own id, kept apart from the
replica's request id that feedback joins by) and a count of corrections per label.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payloads", sa.Column("correlation_id", sa.String(64), nullable=True))
    op.add_column(
        "feedback", sa.Column("corrections", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("corrections")
    with op.batch_alter_table("payloads") as batch:
        batch.drop_column("correlation_id")
