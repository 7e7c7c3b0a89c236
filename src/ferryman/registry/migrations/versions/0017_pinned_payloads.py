"""Payload records say whether the client pinned the version (``/versions/N``), so input
drift and accuracy from feedback, which rollouts judge, leave those requests out.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "payloads", sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("payloads") as batch:
        batch.drop_column("pinned")
