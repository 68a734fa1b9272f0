"""Reads of the ratings people gave (the ``feedback`` table) for the report pages."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent.store.queries import FeedbackRecord, _feedback
from agent.store.tables import Feedback


def ratings_of(session: Session, analysis_id: str) -> list[FeedbackRecord]:
    """Every rating of one analysis, oldest first."""
    rows = session.scalars(
        select(Feedback).where(Feedback.analysis_id == analysis_id).order_by(Feedback.id)
    )
    return [_feedback(row) for row in rows]


def latest_verdicts(session: Session, analysis_ids: Iterable[str]) -> dict[str, str]:
    """Analysis id -> the verdict of its latest rating, for the analyses that have one."""
    ids = list(analysis_ids)
    if not ids:
        return {}
    latest = (
        select(func.max(Feedback.id))
        .where(Feedback.analysis_id.in_(ids))
        .group_by(Feedback.analysis_id)
    )
    rows = session.execute(
        select(Feedback.analysis_id, Feedback.verdict).where(Feedback.id.in_(latest))
    )
    return {analysis_id: verdict for analysis_id, verdict in rows}


def count_by_author_prefix(session: Session, analysis_id: str, prefix: str) -> int:
    """How many ratings of one analysis came through one door (``share:``, ``web:``)."""
    query = select(func.count(Feedback.id)).where(
        Feedback.analysis_id == analysis_id, Feedback.author.startswith(prefix, autoescape=True)
    )
    return int(session.scalar(query) or 0)
