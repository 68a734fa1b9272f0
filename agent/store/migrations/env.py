"""Alembic environment: always online, on the connection :func:`agent.store.db.migrate`
passes in ``config.attributes`` (so migrations run inside the caller's transaction and lock).

To write a new revision: ``alembic -x ... revision`` is not needed; copy the latest file in
``versions/``, bump ``revision``/``down_revision`` and write the operations by hand.
"""

from __future__ import annotations

from alembic import context

from agent.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
