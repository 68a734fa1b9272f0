"""Engine creation and schema migration.

SQLite (default: ``<data_dir>/rca.db``) is for one process: WAL mode, a busy timeout, and
every transaction opened with ``BEGIN IMMEDIATE`` so that two threads never both read and then
fail to upgrade to a write lock. PostgreSQL is for one or more replicas; migrations then run
under an advisory lock so that replicas starting together do not race to create tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from agent.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every replica.
_MIGRATION_LOCK_ID = 4_242_001


def database_url(configured: str | None, data_dir: Path) -> str:
    """The configured URL, or the embedded SQLite file under ``data_dir``."""
    if configured:
        return configured
    return f"sqlite:///{(data_dir / 'rca.db').resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine for ``url``; a bad URL is a :class:`ConfigError` naming the setting."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=pool_size
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        return create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_timeout=5
        )
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigError(f"invalid setting database_url: {exc}") from None


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (idempotent; safe with concurrent replicas)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
