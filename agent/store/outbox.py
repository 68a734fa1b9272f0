"""The Slack outbox: durable pending posts, claimed with a lease like analysis jobs.

Why an outbox rather than posting from the worker that finished the analysis: Slack may be
down for minutes, and the process may die; the analysis must be stored and served anyway,
and the post must happen later, once, also after a restart. So finishing an analysis of an
incident writes a ``slack_posts`` row in the same transaction as the result
(:func:`enqueue`), a resolution marks it pending again (:func:`touch`), and a publisher
claims rows (``FOR UPDATE SKIP LOCKED`` plus a compare-and-set, as :mod:`agent.store.queue`
does) so two replicas never deliver the same row at once. Every write after the claim is
fenced on ``lease_owner``. The incident's ``(slack_channel, slack_ts)`` is the one message
all later deliveries update: never a second top-level post per incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from agent.store.tables import AnalysisRow, Incident, SlackPost

PENDING, POSTING, DONE, SKIPPED, FAILED = "pending", "posting", "done", "skipped", "failed"


@dataclass(frozen=True)
class ClaimedPost:
    """One delivery to make: what to show, what Slack shows now, and where."""

    incident_id: str
    revision: int
    attempts: int
    analysis_id: str
    analysis_json: str
    shown_json: str | None  # the analysis the message shows now (None: not posted yet)
    channel: str | None  # the stored message, if posted
    ts: str | None
    incident_status: str  # firing | resolved
    alert_payload: str
    has_chart: bool


def enqueue(session: Session, analysis_id: str, now: datetime) -> bool:
    """After an incident's analysis is stored (same transaction): show it in Slack.
    False when the analysis belongs to no incident (ad-hoc requests are not posted)."""
    incident_id = session.scalar(
        select(AnalysisRow.incident_id).where(AnalysisRow.id == analysis_id)
    )
    if incident_id is None:
        return False
    row = session.get(SlackPost, incident_id, with_for_update=True)
    if row is None:
        session.add(
            SlackPost(
                incident_id=incident_id,
                analysis_id=analysis_id,
                state=PENDING,
                revision=1,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        return True
    row.analysis_id = analysis_id
    _more_work(row, now)
    return True


def touch(session: Session, incident_ids: list[str], now: datetime) -> int:
    """The incidents changed (resolved): re-deliver their messages. Rows that do not exist
    yet (analysis still running) need nothing: their first post shows the new state."""
    rows = session.scalars(
        select(SlackPost).where(SlackPost.incident_id.in_(incident_ids)).with_for_update()
    ).all()
    for row in rows:
        _more_work(row, now)
    return len(rows)


def _more_work(row: SlackPost, now: datetime) -> None:
    row.revision += 1
    row.updated_at = now
    if row.state != POSTING:  # a claimed row stays claimed; its claimer sees the revision
        row.state = PENDING
        row.next_attempt_at = now
        row.last_error = None


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    return or_(
        and_(SlackPost.state == PENDING, SlackPost.next_attempt_at <= now),
        and_(SlackPost.state == POSTING, SlackPost.lease_expires_at < now),
    )


def claim(session: Session, owner: str, lease: timedelta, now: datetime) -> ClaimedPost | None:
    """Take the longest-waiting deliverable post, or None."""
    found = session.execute(
        select(SlackPost.incident_id, SlackPost.attempts, SlackPost.revision)
        .where(_claimable(now))
        .order_by(SlackPost.next_attempt_at, SlackPost.incident_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if found is None:
        return None
    taken = session.execute(
        update(SlackPost)
        .where(
            SlackPost.incident_id == found.incident_id,
            SlackPost.attempts == found.attempts,
            SlackPost.revision == found.revision,
            _claimable(now),
        )
        .values(
            state=POSTING,
            attempts=found.attempts + 1,
            lease_owner=owner,
            lease_expires_at=now + lease,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.get_one(SlackPost, found.incident_id, populate_existing=True)
    incident = session.get_one(Incident, row.incident_id)
    analysis = session.execute(
        select(AnalysisRow.result, AnalysisRow.chart_data.is_not(None)).where(
            AnalysisRow.id == row.analysis_id
        )
    ).one()
    shown = (
        session.scalar(select(AnalysisRow.result).where(AnalysisRow.id == row.shown_analysis_id))
        if row.shown_analysis_id
        else None
    )
    return ClaimedPost(
        incident_id=row.incident_id,
        revision=row.revision,
        attempts=row.attempts,
        analysis_id=row.analysis_id,
        analysis_json=analysis[0] or "{}",
        shown_json=shown,
        channel=incident.slack_channel,
        ts=incident.slack_ts,
        incident_status=incident.status,
        alert_payload=incident.payload,
        has_chart=bool(analysis[1]),
    )


def _fenced(session: Session, post: ClaimedPost, owner: str) -> SlackPost | None:
    row = session.get(SlackPost, post.incident_id, with_for_update=True, populate_existing=True)
    if row is None or row.lease_owner != owner or row.state != POSTING:
        return None  # the lease expired and someone else took the row over
    return row


def _release(row: SlackPost, post: ClaimedPost, state: str, now: datetime) -> None:
    """End the lease; new work that arrived meanwhile leaves the row pending."""
    changed = row.revision != post.revision
    row.state = PENDING if changed and state == DONE else state
    row.lease_owner = None
    row.lease_expires_at = None
    row.updated_at = now
    if changed:
        row.next_attempt_at = now


def delivered(
    session: Session, post: ClaimedPost, owner: str, channel: str, ts: str, now: datetime
) -> bool:
    """Slack shows ``post.analysis_id`` at (channel, ts); False when the lease was lost."""
    row = _fenced(session, post, owner)
    if row is None:
        return False
    session.execute(
        update(Incident)
        .where(Incident.id == post.incident_id)
        .values(slack_channel=channel, slack_ts=ts)
    )
    session.execute(
        update(AnalysisRow)
        .where(AnalysisRow.id == post.analysis_id)
        .values(
            slack_channel=channel,
            slack_ts=ts,
            published_at=func.coalesce(AnalysisRow.published_at, now),
        )
    )
    row.shown_analysis_id = post.analysis_id
    row.attempts = 0
    row.last_error = None
    _release(row, post, DONE, now)
    return True


def settle(
    session: Session,
    post: ClaimedPost,
    owner: str,
    state: str,
    error: str | None,
    now: datetime,
    retry_at: datetime | None = None,
) -> bool:
    """Nothing was delivered: ``pending`` again at ``retry_at``, or ``skipped``/``failed``."""
    row = _fenced(session, post, owner)
    if row is None:
        return False
    row.last_error = error
    _release(row, post, state, now)
    if state == PENDING and retry_at is not None:
        row.next_attempt_at = retry_at
    return True


def release_prefix(session: Session, identity: str, now: datetime) -> int:
    """On shutdown: hand this process's claimed posts back, due now."""
    done = session.execute(
        update(SlackPost)
        .where(
            SlackPost.lease_owner.startswith(identity + ":", autoescape=True),
            SlackPost.state == POSTING,
        )
        .values(state=PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def requeue_orphans(session: Session, now: datetime) -> int:
    """SQLite only (one process): a claimed post at start belongs to a dead process."""
    done = session.execute(
        update(SlackPost)
        .where(SlackPost.state == POSTING)
        .values(state=PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def pending_count(session: Session) -> int:
    """Posts waiting for Slack (pending or being delivered): the outbox gauge."""
    count = session.scalar(select(func.count()).where(SlackPost.state.in_((PENDING, POSTING))))
    return int(count or 0)


def remember_message(session: Session, analysis_id: str, channel: str, ts: str) -> None:
    """The bot showed ``analysis_id`` at (channel, ts) itself (``/rca``, a re-run): remember
    it, and when that message is an incident's, make it what later deliveries render."""
    session.execute(
        update(AnalysisRow)
        .where(AnalysisRow.id == analysis_id)
        .values(slack_channel=channel, slack_ts=ts)
    )
    incident_id = session.scalar(
        select(Incident.id).where(Incident.slack_channel == channel, Incident.slack_ts == ts)
    )
    if incident_id is None:
        return
    session.execute(
        update(SlackPost)
        .where(SlackPost.incident_id == incident_id)
        .values(analysis_id=analysis_id, shown_analysis_id=analysis_id)
    )


def message_analysis(session: Session, channel: str, ts: str) -> str | None:
    """The latest finished analysis shown in the message at (channel, ts)."""
    incidents = select(Incident.id).where(
        Incident.slack_channel == channel, Incident.slack_ts == ts
    )
    return session.scalar(
        select(AnalysisRow.id)
        .where(
            AnalysisRow.status == "done",
            or_(
                and_(AnalysisRow.slack_channel == channel, AnalysisRow.slack_ts == ts),
                AnalysisRow.incident_id.in_(incidents),
            ),
        )
        .order_by(AnalysisRow.finished_at.desc(), AnalysisRow.id.desc())
        .limit(1)
    )
