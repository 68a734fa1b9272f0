"""The root cause a rating confirmed, beside each fingerprint, filled in for past ratings.

Incident memory matches an analysis a person corrected by the cause they named
(agent.memory.fingerprint). The column is nullable and outside the fingerprint's JSON, so a
replica still on the earlier release reads every row during a rolling upgrade. Rows rated
before it get the cause their latest rating confirms.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from agent.memory.fingerprint import confirmed_token
from agent.memory.recall import confirmed_cause

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fingerprints") as batch:
        batch.add_column(sa.Column("confirmed", sa.Text(), nullable=True))
    connection = op.get_bind()
    latest = connection.execute(
        sa.text(
            "SELECT f.analysis_id, f.fingerprint, r.verdict, r.actual_service, "
            "r.actual_fault_type FROM fingerprints f JOIN feedback r "
            "ON r.analysis_id = f.analysis_id WHERE r.id = (SELECT MAX(id) FROM feedback "
            "WHERE analysis_id = f.analysis_id)"
        )
    ).all()
    for analysis_id, text, verdict, actual_service, actual_fault in latest:
        said = json.loads(text)
        service, fault = confirmed_cause(
            said.get("root_service"), said.get("fault_type"), verdict, actual_service, actual_fault
        )
        if (confirmed := confirmed_token(service, fault)) is not None:
            connection.execute(
                sa.text("UPDATE fingerprints SET confirmed = :c WHERE analysis_id = :a"),
                {"c": confirmed, "a": analysis_id},
            )


def downgrade() -> None:
    with op.batch_alter_table("fingerprints") as batch:
        batch.drop_column("confirmed")
