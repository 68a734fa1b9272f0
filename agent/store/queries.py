"""Reads for the API, and feedback: the one table people write to after the fact.

:func:`analyses_with_feedback` is the query the fine-tuning dataset builder reads: every
finished analysis that someone rated, with the rating, oldest first.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from agent.models import Analysis, Trigger
from agent.store.memory import confirm_fingerprint
from agent.store.tables import AnalysisRow, AnalysisService, Feedback, Incident


@dataclass(frozen=True)
class AnalysisRecord:
    """An analysis job as the API shows it: state, and the result once done."""

    id: str
    status: str
    trigger: Trigger
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None
    result: str | None
    root_service: str | None
    confidence: float | None
    has_chart: bool
    incident_status: str | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    analysis_id: str
    verdict: str
    actual_service: str | None
    actual_fault_type: str | None
    note: str
    author: str
    created_at: datetime
    resolution: str | None = None
    resolution_url: str | None = None


def _records(session: Session, query: Select) -> list[AnalysisRecord]:
    rows = session.execute(
        query.add_columns(
            Incident.status, Incident.resolved_at, AnalysisRow.chart_data.is_not(None)
        ).outerjoin(Incident, Incident.id == AnalysisRow.incident_id)
    ).all()
    return [
        AnalysisRecord(
            id=row.id,
            status=row.status,
            trigger=Trigger.model_validate_json(row.trigger),
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            attempts=row.attempts,
            error=row.error,
            result=row.result,
            root_service=row.root_service,
            confidence=row.confidence,
            has_chart=bool(has_chart),
            incident_status=incident_status,
            resolved_at=resolved_at,
        )
        for row, incident_status, resolved_at, has_chart in rows
    ]


def get_analysis(session: Session, analysis_id: str) -> AnalysisRecord | None:
    found = _records(session, select(AnalysisRow).where(AnalysisRow.id == analysis_id))
    return found[0] if found else None


def get_chart(session: Session, analysis_id: str) -> tuple[bytes | None, str | None] | None:
    """(cached PNG, chart data) of an analysis; None when there is no such analysis."""
    row = session.execute(
        select(AnalysisRow.chart, AnalysisRow.chart_data).where(AnalysisRow.id == analysis_id)
    ).first()
    return (row.chart, row.chart_data) if row is not None else None


def store_chart(session: Session, analysis_id: str, png: bytes) -> None:
    session.execute(update(AnalysisRow).where(AnalysisRow.id == analysis_id).values(chart=png))


class BadCursor(ValueError):
    """A pagination cursor that this server did not hand out."""


def encode_cursor(record: AnalysisRecord) -> str:
    raw = f"{record.created_at.isoformat()}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, analysis_id = raw.split("|", 1)
        when = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("cursor is not one this server returned") from None
    if when.tzinfo is None:
        raise BadCursor("cursor is not one this server returned")
    return when, analysis_id


RATINGS = ("correct", "partially", "wrong", "unrated")


def rated_as(rating: str) -> ColumnElement[bool]:
    """Analyses whose latest rating is ``rating`` (``unrated``: none yet)."""
    if rating == "unrated":
        return AnalysisRow.id.not_in(select(Feedback.analysis_id))
    if rating not in RATINGS:
        raise ValueError(f"rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    latest = select(func.max(Feedback.id).label("id")).group_by(Feedback.analysis_id).subquery()
    return AnalysisRow.id.in_(
        select(Feedback.analysis_id)
        .join(latest, Feedback.id == latest.c.id)
        .where(Feedback.verdict == rating)
    )


def list_analyses(
    session: Session,
    *,
    service: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    rating: str | None = None,
) -> tuple[list[AnalysisRecord], str | None]:
    """Newest first, keyset-paginated: (page, cursor of the next page or None); ``rating``
    filters by the latest rating (:func:`rated_as`)."""
    query = select(AnalysisRow)
    if rating is not None:
        query = query.where(rated_as(rating))
    if service is not None:
        query = query.where(
            AnalysisRow.id.in_(
                select(AnalysisService.analysis_id).where(AnalysisService.service == service)
            )
        )
    if status is not None:
        query = query.where(AnalysisRow.status == status)
    if since is not None:
        query = query.where(AnalysisRow.created_at >= since)
    if cursor is not None:
        when, last_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                AnalysisRow.created_at < when,
                and_(AnalysisRow.created_at == when, AnalysisRow.id < last_id),
            )
        )
    query = query.order_by(AnalysisRow.created_at.desc(), AnalysisRow.id.desc()).limit(limit + 1)
    found = _records(session, query)
    page = found[:limit]
    return page, encode_cursor(page[-1]) if len(found) > limit else None


def add_feedback(
    session: Session,
    analysis_id: str,
    *,
    verdict: str,
    actual_service: str | None,
    actual_fault_type: str | None,
    note: str,
    author: str,
    now: datetime,
    resolution: str | None = None,
    resolution_url: str | None = None,
) -> FeedbackRecord | None:
    """Store a rating, and what it confirms in the analysis's fingerprint (incident memory
    matches the next incident by the cause a person stood behind); None when there is no
    such analysis."""
    if session.get(AnalysisRow, analysis_id) is None:
        return None
    row = Feedback(
        analysis_id=analysis_id,
        verdict=verdict,
        actual_service=actual_service,
        actual_fault_type=actual_fault_type,
        note=note,
        author=author,
        created_at=now,
        resolution=resolution,
        resolution_url=resolution_url,
    )
    session.add(row)
    session.flush()
    confirm_fingerprint(session, analysis_id, verdict, actual_service, actual_fault_type, now)
    return _feedback(row)


def _feedback(row: Feedback) -> FeedbackRecord:
    return FeedbackRecord(
        id=row.id,
        analysis_id=row.analysis_id,
        verdict=row.verdict,
        actual_service=row.actual_service,
        actual_fault_type=row.actual_fault_type,
        note=row.note,
        author=row.author,
        created_at=row.created_at,
        resolution=row.resolution,
        resolution_url=row.resolution_url,
    )


def delete_analysis(session: Session, analysis_id: str) -> bool:
    """Delete an analysis with everything stored about it (its ratings, its fingerprint in
    incident memory, its chart, its Slack outbox row); False when there is none."""
    done = session.execute(delete(AnalysisRow).where(AnalysisRow.id == analysis_id))
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def analyses_with_feedback(session: Session) -> Iterator[tuple[Analysis, FeedbackRecord]]:
    """Every finished analysis that was rated, with each of its ratings, oldest first."""
    rows = session.execute(
        select(AnalysisRow.result, Feedback)
        .join(Feedback, Feedback.analysis_id == AnalysisRow.id)
        .where(AnalysisRow.status == "done", AnalysisRow.result.is_not(None))
        .order_by(Feedback.created_at, Feedback.id)
    )
    for result, feedback in rows:
        yield Analysis.model_validate_json(result or "{}"), _feedback(feedback)
