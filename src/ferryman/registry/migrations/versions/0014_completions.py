"""Completions in the payload log: what kind of answer a record is, so a language model's
completion takes a thumbs up or down as its feedback (a classifier's answer takes a class).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payloads", sa.Column("kind", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payloads") as batch:
        batch.drop_column("kind")
