"""The Slack outbox in the store: claims, leases, revisions, the stored message.

Run on SQLite and on the real PostgreSQL (``SKIP LOCKED`` only matters there).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import build_analysis
from service_support import notification, postgres_database
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from agent.models import Trigger
from agent.service.schemas import WebhookPayload
from agent.service.webhook import episode_of, job_of
from agent.store import outbox, queue
from agent.store.db import database_url, make_engine, migrate
from agent.store.intake import NewJob, enqueue, record_firing, record_resolved
from agent.store.tables import Incident, SlackPost

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
LATER = NOW + timedelta(seconds=1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    engine: Engine
    if request.param == "sqlite":
        engine = make_engine(database_url(None, tmp_path))
        migrate(engine)
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()
        return
    with postgres_database() as url:
        engine = make_engine(url)
        migrate(engine)
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()


def analysed_incident(sessions: sessionmaker, group: str = "g1") -> tuple[str, str]:
    """An alert episode whose analysis is stored and queued for Slack: (incident, analysis)."""
    payload = WebhookPayload.model_validate(notification(group=group))
    episode = episode_of(payload)
    job = job_of(payload, episode, NOW)
    with sessions.begin() as session:
        record_firing(session, episode, job, NOW)
    result = build_analysis().model_copy(update={"id": job.id}).model_dump_json()
    with sessions.begin() as session:
        claimed = queue.claim(session, f"worker-{group}", LEASE, NOW)
        assert claimed is not None and claimed.id == job.id
        assert queue.finish(session, job.id, f"worker-{group}", result, NOW)
        assert outbox.enqueue(session, job.id, NOW)
    return episode.id, job.id


def claim(sessions: sessionmaker, owner: str, now: datetime = LATER) -> outbox.ClaimedPost | None:
    with sessions.begin() as session:
        return outbox.claim(session, owner, LEASE, now)


def row(sessions: sessionmaker, incident_id: str) -> SlackPost:
    with sessions.begin() as session:
        return session.get_one(SlackPost, incident_id)


def test_resolution_during_a_delivery_leaves_the_post_pending_for_an_update(
    sessions: sessionmaker,
) -> None:
    incident_id, analysis_id = analysed_incident(sessions)
    first = claim(sessions, "pub-a")
    assert first is not None and (first.channel, first.ts, first.shown_json) == (None, None, None)
    assert first.incident_status == "firing" and first.analysis_id == analysis_id
    resolved = WebhookPayload.model_validate(notification(status="resolved"))
    with sessions.begin() as session:
        record_resolved(session, episode_of(resolved), LATER)
    assert claim(sessions, "pub-b") is None  # still claimed by pub-a: never two deliveries
    with sessions.begin() as session:
        assert outbox.delivered(session, first, "pub-a", "C0INC", "1700.000100", LATER)
    assert row(sessions, incident_id).state == "pending"  # the resolution is still to show
    second = claim(sessions, "pub-b")
    assert second is not None
    assert (second.channel, second.ts, second.incident_status) == (
        "C0INC",
        "1700.000100",
        "resolved",
    )
    assert second.shown_json is not None and second.attempts == 1
    with sessions.begin() as session:
        assert outbox.delivered(session, second, "pub-b", "C0INC", "1700.000100", LATER)
        incident = session.get_one(Incident, incident_id)
        assert (incident.slack_channel, incident.slack_ts) == ("C0INC", "1700.000100")
        assert outbox.message_analysis(session, "C0INC", "1700.000100") == analysis_id
        assert outbox.pending_count(session) == 0
    assert row(sessions, incident_id).state == "done"


def test_an_expired_lease_is_claimed_again_and_fences_the_old_publisher(
    sessions: sessionmaker,
) -> None:
    incident_id, _ = analysed_incident(sessions)
    stale = claim(sessions, "pub-dead")
    assert stale is not None
    taken = claim(sessions, "pub-new", LATER + LEASE + timedelta(seconds=1))
    assert taken is not None and taken.attempts == 2  # the publisher then looks before posting
    with sessions.begin() as session:
        assert not outbox.delivered(session, stale, "pub-dead", "C0X", "1.0", LATER)
        assert not outbox.settle(session, stale, "pub-dead", outbox.FAILED, "late", LATER)
        assert outbox.settle(
            session, taken, "pub-new", outbox.PENDING, "slack down", LATER, LATER + LEASE
        )
    kept = row(sessions, incident_id)
    assert (kept.state, kept.last_error, kept.lease_owner) == ("pending", "slack down", None)
    assert claim(sessions, "pub-new") is None  # not due before its retry time


def test_concurrent_publishers_claim_each_post_once(sessions: sessionmaker) -> None:
    incidents = [analysed_incident(sessions, f"g{n}")[0] for n in range(6)]
    with ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(lambda n: claim(sessions, f"pub-{n}"), range(12)))
    ids = [c.incident_id for c in claimed if c is not None]
    assert sorted(ids) == sorted(incidents)


def adhoc_analysis(sessions: sessionmaker) -> str:
    """A stored ``/rca``-style analysis, tied to no incident."""
    job = NewJob(
        id="an-adhoc",
        trigger=Trigger(kind="slack", services=["checkout"]),
        incident_start=NOW - timedelta(minutes=30),
        window_end=NOW,
        services=["checkout"],
    )
    result = build_analysis().model_copy(update={"id": job.id}).model_dump_json()
    with sessions.begin() as session:
        enqueue(session, job, NOW)
    with sessions.begin() as session:
        assert queue.claim(session, "worker-adhoc", LEASE, NOW) is not None
        assert queue.finish(session, job.id, "worker-adhoc", result, LATER)
        assert not outbox.enqueue(session, job.id, LATER)  # ad-hoc analyses are not queued
    return job.id


def test_a_bot_rerun_becomes_what_the_incident_message_shows(sessions: sessionmaker) -> None:
    incident_id, analysis_id = analysed_incident(sessions)
    post = claim(sessions, "pub")
    assert post is not None
    with sessions.begin() as session:
        outbox.delivered(session, post, "pub", "C0INC", "1700.000100", LATER)
    rerun_id = adhoc_analysis(sessions)
    with sessions.begin() as session:
        outbox.remember_message(session, rerun_id, "C0INC", "1700.000100")
        outbox.touch(session, [incident_id], LATER)
        assert outbox.message_analysis(session, "C0INC", "1700.000100") == rerun_id
    again = claim(sessions, "pub", LATER + timedelta(seconds=1))
    assert again is not None and again.incident_id == incident_id
    assert again.analysis_id == rerun_id != analysis_id
