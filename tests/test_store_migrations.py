"""Migrations on a database that already holds rows: upgraded in place on SQLite and the local
PostgreSQL, every old row kept and readable, as a running deployment's database is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from service_support import postgres_database
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from agent.models import Change
from agent.store.changes import add_change, list_changes
from agent.store.db import MIGRATIONS, database_url, make_engine, migrate

NOW = datetime(2024, 5, 14, 10, 30, tzinfo=UTC)
RETENTION = timedelta(days=90)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(database_url(None, tmp_path))
        yield engine
        engine.dispose()
        return
    with postgres_database() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def upgrade_to(engine: Engine, revision: str) -> None:
    """The schema as an older release left it."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_0005_adds_the_namespace_and_keeps_the_changes_stored_before(engine: Engine) -> None:
    upgrade_to(engine, "0004")
    old = {
        "key": "a" * 64,
        "service": "checkout",
        "kind": "deploy",
        "at": NOW - timedelta(minutes=15),
        "from_version": "v1.4.2",
        "to_version": "v1.4.3",
        "source": "api",
        "client_id": "run-7",
        "known_service": True,
        "received_at": NOW - timedelta(minutes=14),
    }
    columns = ", ".join(old)
    values = ", ".join(f":{name}" for name in old)
    with engine.begin() as connection:
        connection.execute(sa.text(f"INSERT INTO changes ({columns}) VALUES ({values})"), old)

    migrate(engine)

    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        (before,) = list_changes(session)
        assert before.change.namespace is None
        assert (before.change.service, before.change.id) == ("checkout", "run-7")
        assert before.change.to_version == "v1.4.3" and before.known_service
        placed = Change(service="checkout", namespace="shop", at=NOW, to_version="v1.4.4")
        _, new = add_change(session, placed, NOW, RETENTION)
        assert new
    with sessions.begin() as session:
        stored = [(s.change.namespace, s.change.to_version) for s in list_changes(session)]
        assert stored == [(None, "v1.4.3"), ("shop", "v1.4.4")]
        (shop,) = list_changes(session, namespace="shop")
        assert shop.change.to_version == "v1.4.4"
    with engine.connect() as connection:
        version = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
    assert version == "0005"
