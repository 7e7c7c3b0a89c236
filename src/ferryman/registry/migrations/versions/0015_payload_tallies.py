"""Payload tallies: what each replica's payload log did with its requests (logged, sampled
out at a declared rate, dropped), so no loss of the log is silent.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.registry.tables import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payload_tallies",
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(160), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("answered", sa.BigInteger(), nullable=False),
        sa.Column("sampled_out", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("instance", name="pk_payload_tallies"),
    )
    op.create_index("ix_payload_tallies_endpoint", "payload_tallies", ["endpoint"])


def downgrade() -> None:
    op.drop_index("ix_payload_tallies_endpoint", table_name="payload_tallies")
    op.drop_table("payload_tallies")
