"""Deployments: the desired state of each endpoint.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.registry.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.UniqueConstraint("endpoint", name="uq_deployments_endpoint"),
    )
    message = "deployments are removed by marking them, never deleted"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER deployments_no_delete BEFORE DELETE ON deployments FOR EACH ROW "
            f"EXECUTE FUNCTION ferryman_refuse('{message}')"
        )
    else:
        op.execute(
            "CREATE TRIGGER deployments_no_delete BEFORE DELETE ON deployments "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def downgrade() -> None:
    op.drop_table("deployments")
