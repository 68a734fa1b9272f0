"""Migrations on a database that already holds rows: upgraded in place on SQLite and the local
PostgreSQL, every old row kept and readable, as a running deployment's database is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from service_support import postgres_database
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from agent.memory.embed import Embedding, from_bytes
from agent.memory.fingerprint import Fingerprint
from agent.models import Change
from agent.store.changes import add_change, list_changes
from agent.store.db import MIGRATIONS, database_url, make_engine, migrate
from agent.store.memory import Memory, store_fingerprint
from agent.store.tables import FingerprintRow

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
    assert version == "0007"


def test_0006_fills_in_what_past_ratings_confirmed(engine: Engine) -> None:
    """Fingerprints rated before the column get the cause of their latest rating; unrated
    ones, and ones whose latest rating names nothing, get none."""
    upgrade_to(engine, "0005")
    said = {"root_service": "checkout", "fault_type": "cpu_saturation", "candidates": []}
    ratings = {
        "a1": [("correct", None, None)],
        "a2": [("correct", None, None), ("wrong", "payments", "memory_leak")],
        "a3": [("wrong", "payments", None), ("wrong", None, None)],
        "a4": [],
    }
    with engine.begin() as connection:
        for analysis_id, given in ratings.items():
            connection.execute(
                sa.text(
                    "INSERT INTO analyses (id, trigger, trigger_kind, incident_start, "
                    "window_end, status, attempts, not_before, created_at) "
                    "VALUES (:id, '{}', 'alert', :at, :at, 'done', 1, :at, :at)"
                ),
                {"id": analysis_id, "at": NOW},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO fingerprints (analysis_id, created_at, stored_at, fingerprint) "
                    "VALUES (:id, :at, :at, :fp)"
                ),
                {"id": analysis_id, "at": NOW, "fp": json.dumps(said)},
            )
            for verdict, service, fault in given:
                connection.execute(
                    sa.text(
                        "INSERT INTO feedback (analysis_id, verdict, actual_service, "
                        "actual_fault_type, note, author, created_at) "
                        "VALUES (:id, :v, :s, :f, '', 'someone', :at)"
                    ),
                    {"id": analysis_id, "v": verdict, "s": service, "f": fault, "at": NOW},
                )

    migrate(engine)

    with engine.begin() as connection:
        confirmed = dict(
            connection.execute(sa.text("SELECT analysis_id, confirmed FROM fingerprints")).all()
        )
    assert confirmed == {
        "a1": "checkout|cpu_saturation",
        "a2": "payments|memory_leak",
        "a3": None,
        "a4": None,
    }


def test_0007_adds_the_embedding_and_keeps_the_fingerprints_stored_before(engine: Engine) -> None:
    """Fingerprints stored before embeddings keep their JSON and confirmed cause, have no
    embedding, and are still found by fingerprint; a new row can hold a vector."""
    upgrade_to(engine, "0006")
    said = {"root_service": "checkout", "fault_type": "cpu_saturation", "candidates": []}
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO analyses (id, trigger, trigger_kind, incident_start, "
                "window_end, status, attempts, not_before, created_at) "
                "VALUES ('old', '{}', 'alert', :at, :at, 'done', 1, :at, :at)"
            ),
            {"at": NOW},
        )
        connection.execute(
            sa.text(
                "INSERT INTO fingerprints (analysis_id, created_at, stored_at, fingerprint, "
                "confirmed) VALUES ('old', :at, :at, :fp, 'checkout|cpu_saturation')"
            ),
            {"at": NOW, "fp": json.dumps(said)},
        )

    migrate(engine)

    with engine.begin() as connection:
        row = connection.execute(
            sa.text(
                "SELECT fingerprint, confirmed, embedding, embedding_model FROM fingerprints "
                "WHERE analysis_id = 'old'"
            )
        ).one()
        version = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
    assert json.loads(row[0]) == said and row[1] == "checkout|cpu_saturation"
    assert (row[2], row[3], version) == (None, None, "0007")
    sessions = sessionmaker(engine, expire_on_commit=False)
    memory = Memory(sessions, None, lambda: NOW, 0.0)
    fp = Fingerprint(root_service="checkout", fault_type="cpu_saturation")
    assert [p.analysis_id for p in memory.similar(fp, 3)] == ["old"]
    vector = Embedding("openai:m", np.asarray([0.6, 0.8], dtype=np.float32))
    with sessions.begin() as session:
        connection = session.connection()
        connection.execute(
            sa.text(
                "INSERT INTO analyses (id, trigger, trigger_kind, incident_start, "
                "window_end, status, attempts, not_before, created_at) "
                "VALUES ('new', '{}', 'alert', :at, :at, 'done', 1, :at, :at)"
            ),
            {"at": NOW},
        )
        store_fingerprint(session, "new", NOW, fp, NOW, vector)
    with sessions.begin() as session:
        stored = session.get(FingerprintRow, "new")
        assert stored is not None and stored.embedding is not None
        assert np.array_equal(from_bytes(stored.embedding), vector.vector)
