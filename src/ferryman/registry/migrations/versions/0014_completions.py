"""Language models: what kind of answer a payload record is, so a completion takes a thumbs
up or down as its feedback (a classifier's answer takes a class); and the monitor's series
of streams (time to first token, time per output token, tokens/s, requests in flight).

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


SERIES = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "tokens_per_s",
          "prompt_tokens_per_s", "in_flight")  # fmt: skip


def upgrade() -> None:
    op.add_column("payloads", sa.Column("kind", sa.String(16), nullable=True))
    for name in SERIES:
        op.add_column("metric_samples", sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metric_samples") as batch:
        for name in SERIES:
            batch.drop_column(name)
    with op.batch_alter_table("payloads") as batch:
        batch.drop_column("kind")
