"""Slack outbox: the stored (channel, ts) of incident messages, and pending posts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.store.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("incidents", "analyses"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("slack_channel", sa.String(64), nullable=True))
            batch.add_column(sa.Column("slack_ts", sa.String(64), nullable=True))
    op.create_index("ix_incidents_slack_message", "incidents", ["slack_channel", "slack_ts"])
    op.create_index("ix_analyses_slack_message", "analyses", ["slack_channel", "slack_ts"])
    op.create_table(
        "slack_posts",
        sa.Column(
            "incident_id",
            sa.String(40),
            sa.ForeignKey("incidents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "analysis_id",
            sa.String(40),
            sa.ForeignKey("analyses.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("shown_analysis_id", sa.String(40), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_slack_posts_state_next", "slack_posts", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("slack_posts")
    op.drop_index("ix_analyses_slack_message", "analyses")
    op.drop_index("ix_incidents_slack_message", "incidents")
    for table in ("analyses", "incidents"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("slack_ts")
            batch.drop_column("slack_channel")
