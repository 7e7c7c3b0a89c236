"""Gates before and during rollouts: a policy's offline gate, and each variant's 4xx share.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("offline_gate", sa.JSON(), nullable=True))
    with op.batch_alter_table("metric_samples") as batch:
        batch.add_column(sa.Column("client_error_rate", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metric_samples") as batch:
        batch.drop_column("client_error_rate")
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("offline_gate")
