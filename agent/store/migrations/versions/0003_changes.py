"""Changes reported by CI/CD (POST /v1/changes): deploys, config pushes, scales, flags.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.store.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("from_version", sa.String(200), nullable=True),
        sa.Column("to_version", sa.String(200), nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=True),
        sa.Column("known_service", sa.Boolean(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_changes_at", "changes", ["at"])
    op.create_index("ix_changes_service_at", "changes", ["service", "at"])


def downgrade() -> None:
    op.drop_table("changes")
