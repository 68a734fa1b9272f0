"""The job queue over the ``analyses`` table: claim with a lease, finish, fail, retry.

Claiming is ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite ignores the clause and
serialises writers instead) followed by a compare-and-set UPDATE on ``attempts``, so a job is
handed to exactly one worker even if the row lock is unavailable. A lease expires: a job
whose worker died (``kill -9``, lost node) is claimed again once ``lease_expires_at`` passes.
Every state change after the claim is fenced on ``lease_owner``, so a worker that lost its
lease cannot overwrite the result of the worker that took the job over.

A job that was already claimed ``max_attempts`` times is not claimed again: the claim that
finds it marks it ``failed`` instead, so ``attempts`` never exceeds ``max_attempts``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from agent.models import Trigger
from agent.store.tables import AnalysisRow, Incident


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    trigger: Trigger
    incident_start: datetime
    window_end: datetime
    attempts: int
    alert_payload: str | None
    # True: the job had used up its attempts; the claim marked it failed (``error``) and it
    # must not run.
    exhausted: bool = False
    error: str | None = None


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    return or_(
        and_(AnalysisRow.status == "pending", AnalysisRow.not_before <= now),
        and_(AnalysisRow.status == "running", AnalysisRow.lease_expires_at < now),
    )


def claim(
    session: Session, owner: str, lease: timedelta, now: datetime, max_attempts: int | None = None
) -> ClaimedJob | None:
    """Take the oldest claimable job, or None. Commits nothing: the caller's transaction does.

    A job already claimed ``max_attempts`` times is failed here rather than claimed a further
    time; it comes back with ``exhausted`` set so the caller can count it.
    """
    row = session.execute(
        select(AnalysisRow.id, AnalysisRow.attempts, AnalysisRow.error)
        .where(_claimable(now))
        .order_by(AnalysisRow.created_at, AnalysisRow.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    exhausted = max_attempts is not None and row.attempts >= max_attempts
    error = _gave_up(row.attempts, row.error) if exhausted else None
    values: dict[str, object] = (
        {
            "status": "failed",
            "error": error,
            "finished_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if exhausted
        else {
            "status": "running",
            "attempts": row.attempts + 1,
            "lease_owner": owner,
            "lease_expires_at": now + lease,
            "started_at": now,
        }
    )
    taken = session.execute(
        update(AnalysisRow)
        .where(AnalysisRow.id == row.id, AnalysisRow.attempts == row.attempts, _claimable(now))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    job = session.get_one(AnalysisRow, row.id)
    payload = (
        session.scalar(select(Incident.payload).where(Incident.id == job.incident_id))
        if job.incident_id and not exhausted
        else None
    )
    return ClaimedJob(
        id=job.id,
        trigger=Trigger.model_validate_json(job.trigger),
        incident_start=job.incident_start,
        window_end=job.window_end,
        attempts=row.attempts if exhausted else row.attempts + 1,
        alert_payload=payload,
        exhausted=exhausted,
        error=error,
    )


def _gave_up(attempts: int, last_error: str | None) -> str:
    """Why a job that used up its attempts failed: each claim ended in a crash (the lease
    expired) or a transient error (``last_error``)."""
    reason = f"gave up after {attempts} attempts"
    if last_error:
        return f"{reason}; last error: {last_error}"
    return f"{reason}; each ended without a result (the process died or lost its lease)"


def _fenced(job_id: str, owner: str):  # type: ignore[no-untyped-def]
    return update(AnalysisRow).where(
        AnalysisRow.id == job_id, AnalysisRow.lease_owner == owner, AnalysisRow.status == "running"
    )


def finish(
    session: Session,
    job_id: str,
    owner: str,
    result_json: str,
    now: datetime,
    chart_data: str | None = None,
) -> bool:
    """Store the analysis and end the lease; False when the lease was lost meanwhile."""
    result = json.loads(result_json)
    root = result.get("root_cause") or {}
    done = session.execute(
        _fenced(job_id, owner).values(
            status="done",
            result=result_json,
            chart_data=chart_data,
            root_service=root.get("service"),
            confidence=result.get("confidence"),
            finished_at=now,
            lease_expires_at=None,
            error=None,
        )
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def fail(session: Session, job_id: str, owner: str, error: str, now: datetime) -> bool:
    """Give up on a job for good (permanent error, time budget, too many attempts)."""
    done = session.execute(
        _fenced(job_id, owner).values(
            status="failed", error=error, finished_at=now, lease_expires_at=None
        )
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def retry_later(session: Session, job_id: str, owner: str, error: str, when: datetime) -> bool:
    """Put a job back in the queue after a transient error, not before ``when``."""
    done = session.execute(
        _fenced(job_id, owner).values(
            status="pending", error=error, not_before=when, lease_owner=None, lease_expires_at=None
        )
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def release_prefix(session: Session, identity: str, now: datetime) -> int:
    """On shutdown: hand the running jobs of this process's workers back to the queue."""
    done = session.execute(
        update(AnalysisRow)
        .where(
            AnalysisRow.lease_owner.startswith(identity + ":", autoescape=True),
            AnalysisRow.status == "running",
        )
        .values(status="pending", not_before=now, lease_owner=None, lease_expires_at=None)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def requeue_orphans(session: Session, now: datetime) -> int:
    """SQLite only (one process by design): every running job belongs to a dead process."""
    done = session.execute(
        update(AnalysisRow)
        .where(AnalysisRow.status == "running")
        .values(status="pending", not_before=now, lease_owner=None, lease_expires_at=None)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class QueueStats:
    """What ``/metrics`` reports of the shared queue."""

    pending: int
    running: int
    oldest_pending_age_s: float


def queue_stats(session: Session, now: datetime) -> QueueStats:
    """Jobs waiting and running, and the age in seconds of the oldest waiting job."""
    counts = dict(
        session.execute(
            select(AnalysisRow.status, func.count())
            .where(AnalysisRow.status.in_(("pending", "running")))
            .group_by(AnalysisRow.status)
        ).all()
    )
    oldest = session.scalar(
        select(func.min(AnalysisRow.created_at)).where(AnalysisRow.status == "pending")
    )
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return QueueStats(int(counts.get("pending", 0)), int(counts.get("running", 0)), max(0.0, age))


def mark_published(session: Session, job_id: str, now: datetime) -> bool:
    """The publishing hook: True for exactly one caller per analysis (compare-and-set).

    A publisher (Slack) calls this before posting and posts only on True, so two replicas
    never post the same analysis twice. A crash between this and the post loses that one
    post rather than duplicating it: at most once, by design.
    """
    done = session.execute(
        update(AnalysisRow)
        .where(
            AnalysisRow.id == job_id,
            AnalysisRow.status == "done",
            AnalysisRow.published_at.is_(None),
        )
        .values(published_at=now)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]
