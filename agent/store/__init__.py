"""Storage of alert episodes, analysis jobs and their results, and feedback.

SQLAlchemy 2 over SQLite (the embedded default, one process) or PostgreSQL (several
replicas). The schema is owned by the Alembic migrations in ``agent/store/migrations``, which
:func:`agent.store.db.migrate` runs on startup; nothing creates tables any other way.
"""
