"""The optional text embedding beside each fingerprint, and the model that made it.

Incident memory may mix the cosine of text embeddings into similarity (agent.memory.embed).
The vector is stored as little-endian float32 bytes (``LargeBinary``: BLOB in SQLite, BYTEA
in PostgreSQL), a quarter of the size of JSON text; ``embedding_model`` names its model, so
vectors of two models are never compared. Both columns are nullable and outside the
fingerprint's JSON: existing rows keep their fingerprint and simply have no embedding, and a
replica still on the earlier release reads every row during a rolling upgrade.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fingerprints") as batch:
        batch.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("embedding_model", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fingerprints") as batch:
        batch.drop_column("embedding_model")
        batch.drop_column("embedding")
