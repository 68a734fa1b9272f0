"""Initial schema: incidents, analyses (jobs and results), analysis_services, feedback.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.store.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("episode_key", sa.String(64), nullable=False, unique=True),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alert_name", sa.Text(), nullable=False),
        sa.Column("alerts", sa.Text(), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_incidents_group_key", "incidents", ["group_key"])
    op.create_table(
        "analyses",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "incident_id",
            sa.String(40),
            sa.ForeignKey("incidents.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("trigger_kind", sa.String(16), nullable=False),
        sa.Column("incident_start", UtcDateTime(), nullable=False),
        sa.Column("window_end", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("root_service", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("chart_data", sa.Text(), nullable=True),
        sa.Column("chart", sa.LargeBinary(), nullable=True),
        sa.Column("published_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_analyses_incident_id", "analyses", ["incident_id"])
    op.create_index("ix_analyses_status_created", "analyses", ["status", "created_at"])
    op.create_index("ix_analyses_created", "analyses", ["created_at", "id"])
    op.create_table(
        "analysis_services",
        sa.Column(
            "analysis_id",
            sa.String(40),
            sa.ForeignKey("analyses.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("service", sa.String(200), primary_key=True),
    )
    op.create_index("ix_analysis_services_service", "analysis_services", ["service"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "analysis_id",
            sa.String(40),
            sa.ForeignKey("analyses.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("actual_service", sa.Text(), nullable=True),
        sa.Column("actual_fault_type", sa.String(40), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_feedback_analysis_id", "feedback", ["analysis_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("analysis_services")
    op.drop_table("analyses")
    op.drop_table("incidents")
