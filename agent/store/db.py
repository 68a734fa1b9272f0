"""Engine creation and schema migration.

SQLite (default: ``<data_dir>/rca.db``) is for one process: WAL mode, a busy timeout, and
every transaction opened with ``BEGIN IMMEDIATE`` so that two threads never both read and then
fail to upgrade to a write lock. The threads of the process queue for that lock on a Python
lock (:class:`WriteLock`) rather than in SQLite's busy handler, which polls with sleeps that
grow to 100 ms: under a burst of webhooks that polling, not the work, made answers take
seconds. PostgreSQL is for one or more replicas; migrations then run under an advisory lock
so that replicas starting together do not race to create tables.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from agent.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every replica.
_MIGRATION_LOCK_ID = 4_242_001
SQLITE_BUSY_TIMEOUT_S = 30


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
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


class WriteLock:
    """One SQLite transaction at a time in this process, handed over in arrival order.

    Taken just before ``BEGIN IMMEDIATE`` and given back when the transaction commits or
    rolls back (SQLAlchemy's ``commit``/``rollback`` events, on the thread that began it).
    First come, first served: a plain ``threading.Lock`` lets a thread that just released it
    take it again while others wait, which is where the long tail of answer times came
    from. A thread that waits longer than the busy timeout gets the error SQLite would give
    ("database is locked"), which the service answers with 503 and Retry-After.
    """

    _HELD = "rca_sqlite_write_lock"

    def __init__(self, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Lock] = deque()

    def acquire(self) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        if turn.acquire(timeout=self.timeout_s):
            return True  # handed over by release(): the lock stays held, now by this thread
        with self._mutex:
            if turn in self._waiting:
                self._waiting.remove(turn)
                return False
        return True  # handed over just as the wait ended

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._held = False

    def begin(self, connection: Any) -> None:
        if not self.acquire():
            raise OperationalError(
                "BEGIN IMMEDIATE", {}, Exception(f"database is locked (waited {self.timeout_s} s)")
            )
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.release()
            raise
        connection.info[self._HELD] = True

    def end(self, connection: Any) -> None:
        if connection.info.pop(self._HELD, False):
            self.release()


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine for ``url``; a bad URL is a :class:`ConfigError` naming the setting."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
                pool_size=pool_size,
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            lock = WriteLock()
            event.listen(engine, "begin", lock.begin)
            event.listen(engine, "commit", lock.end)
            event.listen(engine, "rollback", lock.end)
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
