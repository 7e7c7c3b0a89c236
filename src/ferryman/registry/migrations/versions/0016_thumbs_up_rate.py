"""Language models: the monitor's series of the thumbs-up rate of each variant's rated
completions, beside accuracy from feedback labels.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("metric_samples", sa.Column("thumbs_up_rate", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metric_samples") as batch:
        batch.drop_column("thumbs_up_rate")
