"""The store on SQLite and PostgreSQL: migrations, claiming, leases, fencing, publishing."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from service_support import postgres_database
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import sessionmaker

from agent.models import Trigger
from agent.store import queue
from agent.store.db import database_url, make_engine, migrate
from agent.store.intake import NewJob, enqueue

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(database_url(None, tmp_path))
        migrate(engine)
        yield engine
        engine.dispose()
        return
    with postgres_database() as url:
        engine = make_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


def add_jobs(engine: Engine, count: int) -> list[str]:
    sessions = sessionmaker(engine)
    ids = [f"an-{i:04d}" for i in range(count)]
    with sessions.begin() as session:
        for i, job_id in enumerate(ids):
            job = NewJob(
                id=job_id,
                trigger=Trigger(kind="api", services=["checkout"]),
                incident_start=NOW - timedelta(minutes=30),
                window_end=NOW,
                services=["checkout"],
            )
            enqueue(session, job, NOW + timedelta(milliseconds=i))
    return ids


def claim(engine: Engine, owner: str, now: datetime = NOW + timedelta(seconds=1)) -> str | None:
    with sessionmaker(engine).begin() as session:
        job = queue.claim(session, owner, LEASE, now)
    return job.id if job else None


def test_migrations_are_idempotent(engine: Engine) -> None:
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"incidents", "analyses", "analysis_services", "feedback"} <= tables


def test_concurrent_claims_hand_each_job_out_once(engine: Engine) -> None:
    ids = add_jobs(engine, 40)

    def drain(worker: int) -> list[str]:
        taken = []
        while (job_id := claim(engine, f"w{worker}")) is not None:
            taken.append(job_id)
        return taken

    with ThreadPoolExecutor(6) as pool:
        claimed = [job for batch in pool.map(drain, range(6)) for job in batch]
    assert sorted(claimed) == ids


def test_expired_lease_is_claimed_again_and_fences_the_old_owner(engine: Engine) -> None:
    [job_id] = add_jobs(engine, 1)
    assert claim(engine, "dead-worker") == job_id
    assert claim(engine, "other") is None  # lease still held
    later = NOW + LEASE + timedelta(seconds=5)
    assert claim(engine, "other", later) == job_id
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        assert not queue.finish(session, job_id, "dead-worker", '{"confidence": 0.5}', later)
        assert queue.finish(session, job_id, "other", '{"confidence": 0.5}', later)


def test_publishing_is_claimed_once(engine: Engine) -> None:
    [job_id] = add_jobs(engine, 1)
    assert claim(engine, "w") == job_id
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        assert not queue.mark_published(session, job_id, NOW)  # not done yet
        queue.finish(session, job_id, "w", '{"confidence": 0.9}', NOW)
    results = []
    for _ in range(3):
        with sessions.begin() as session:
            results.append(queue.mark_published(session, job_id, NOW))
    assert results == [True, False, False]


def test_queue_stats_report_depth_and_age(engine: Engine) -> None:
    add_jobs(engine, 3)
    with sessionmaker(engine).begin() as session:
        stats = queue.queue_stats(session, NOW + timedelta(seconds=90))
    assert (stats.pending, stats.running) == (3, 0)
    assert 89 <= stats.oldest_pending_age_s <= 90
