"""Incident memory: fingerprints of analyses, and what fixed it in feedback.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.store.tables import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fingerprints",
        sa.Column(
            "analysis_id",
            sa.String(40),
            sa.ForeignKey("analyses.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("stored_at", UtcDateTime(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
    )
    op.create_index("ix_fingerprints_created_at", "fingerprints", ["created_at"])
    op.create_index("ix_fingerprints_stored_at", "fingerprints", ["stored_at"])
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("resolution", sa.Text(), nullable=True))
        batch.add_column(sa.Column("resolution_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("resolution_url")
        batch.drop_column("resolution")
    op.drop_table("fingerprints")
