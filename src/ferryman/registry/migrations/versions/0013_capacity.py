"""Capacity results: the highest rate each serving configuration of a variant carried.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.registry.tables import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capacity_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey(
                "versions.id", ondelete="RESTRICT", name="fk_capacity_results_version_id_versions"
            ),
            nullable=False,
        ),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("max_batch_size", sa.Integer(), nullable=False),
        sa.Column("max_delay_ms", sa.Float(), nullable=False),
        sa.Column("intra_op_threads", sa.Integer(), nullable=False),
        sa.Column("p99_target_ms", sa.Float(), nullable=False),
        sa.Column("max_qps", sa.Float(), nullable=False),
        sa.Column("p99_ms", sa.Float(), nullable=True),
        sa.Column("cpu_pct", sa.Float(), nullable=True),
        sa.Column("rss_bytes", sa.Float(), nullable=True),
        sa.Column("stop_reason", sa.String(200), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("cpu_count", sa.Integer(), nullable=False),
        sa.Column("measured_by", sa.String(128), nullable=False),
        sa.Column("measured_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_capacity_results"),
        sa.UniqueConstraint(
            "version_id",
            "variant",
            "max_batch_size",
            "max_delay_ms",
            "intra_op_threads",
            "p99_target_ms",
            name="uq_capacity_results_configuration",
        ),
    )


def downgrade() -> None:
    op.drop_table("capacity_results")
