"""Intake: turn an Alertmanager notification or an API request into a durable job.

Each function runs inside the caller's transaction, so the episode, the job and the job's
service index are committed together or not at all; the webhook answers 202 only after that
commit. Duplicate deliveries race on the unique ``episode_key``: the loser's transaction
fails with an IntegrityError and the caller records a duplicate instead (see
:func:`agent.service.webhook`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from agent.models import Trigger
from agent.store import outbox
from agent.store.tables import SERVICE_NAME_MAX, AnalysisRow, AnalysisService, Incident


class Outcome(StrEnum):
    """What a notification did; also the ``result`` label of the webhook metric."""

    NEW = "new"  # a new firing episode: a job was queued
    DUPLICATE = "duplicate"  # a repeat of an episode already seen
    LATE = "late"  # firing, but the episode was already resolved: not reopened
    RESOLVED = "resolved"  # marked open episodes resolved
    RESOLVED_UNSEEN = "resolved_unseen"  # resolved before any firing arrived: recorded only


@dataclass(frozen=True)
class NewJob:
    """An analysis to run: who asked, and the scope to collect."""

    id: str
    trigger: Trigger
    incident_start: datetime
    window_end: datetime
    services: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Episode:
    """One firing episode of an alert group, as identified by its idempotency key."""

    key: str
    id: str
    group_key: str
    alert_name: str
    alerts: list[tuple[str, str]]  # (fingerprint, startsAt), sorted
    starts_at: datetime
    payload: str


def enqueue(session: Session, job: NewJob, now: datetime, incident_id: str | None = None) -> None:
    """Add a pending job (and its service index rows) to the session's transaction.

    Plain INSERTs rather than ORM objects: this runs in the webhook's answer path, where the
    unit of work's bookkeeping cost more than the writes themselves.
    """
    session.execute(
        insert(AnalysisRow).values(
            id=job.id,
            incident_id=incident_id,
            trigger=job.trigger.model_dump_json(),
            trigger_kind=job.trigger.kind,
            incident_start=job.incident_start,
            window_end=job.window_end,
            status="pending",
            attempts=0,
            not_before=now,
            created_at=now,
        )
    )
    # The index serves ``?service=`` (at most SERVICE_NAME_MAX characters): an alert whose
    # service label is longer is still analysed, it is only not findable by that name.
    services = [s for s in dict.fromkeys(job.services) if len(s) <= SERVICE_NAME_MAX]
    if services:
        session.execute(
            insert(AnalysisService), [{"analysis_id": job.id, "service": s} for s in services]
        )


def record_firing(session: Session, episode: Episode, job: NewJob, now: datetime) -> Outcome:
    """Queue an analysis for a new episode; count a repeat of a known one."""
    known = session.execute(
        select(Incident.id, Incident.status).where(Incident.episode_key == episode.key)
    ).first()
    if known is not None:
        session.execute(
            update(Incident)
            .where(Incident.id == known.id)
            .values(notifications=Incident.notifications + 1)
        )
        return Outcome.LATE if known.status == "resolved" else Outcome.DUPLICATE
    # The incident first: the job references it (foreign key).
    session.execute(insert(Incident).values(**_incident(episode, "firing", now)))
    enqueue(session, job, now, incident_id=episode.id)
    return Outcome.NEW


def record_resolved(session: Session, episode: Episode, now: datetime) -> Outcome:
    """Resolve the group's open episodes that share an alert with this notification.

    A resolve that arrives before its firing (out of order) is stored as an already
    resolved episode with the same key, so the late firing is recognised and not analyzed.
    """
    resolved = set(episode.alerts)
    open_episodes = session.scalars(
        select(Incident).where(Incident.group_key == episode.group_key, Incident.status == "firing")
    ).all()
    hits = [i for i in open_episodes if {tuple(p) for p in json.loads(i.alerts)} & resolved]
    for incident in hits:
        incident.status = "resolved"
        incident.resolved_at = now
        incident.notifications += 1
    if hits:
        session.flush()
        outbox.touch(session, [i.id for i in hits], now)  # their Slack messages show it
        return Outcome.RESOLVED
    known = session.scalar(select(Incident).where(Incident.episode_key == episode.key))
    if known is not None:
        known.notifications += 1
        return Outcome.DUPLICATE
    session.execute(insert(Incident).values(**_incident(episode, "resolved", now)))
    return Outcome.RESOLVED_UNSEEN


def _incident(episode: Episode, status: str, now: datetime) -> dict[str, Any]:
    return {
        "id": episode.id,
        "episode_key": episode.key,
        "group_key": episode.group_key,
        "status": status,
        "alert_name": episode.alert_name,
        "alerts": json.dumps(episode.alerts),
        "starts_at": episode.starts_at,
        "received_at": now,
        "resolved_at": now if status == "resolved" else None,
        "notifications": 1,
        "payload": episode.payload,
    }
