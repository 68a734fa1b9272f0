"""The analyses list, one way for both doors: the JSON API (``GET /v1/analyses``) and the
report pages (``GET /analyses``) take the same filter and paging parameters, page with the
same default size and refuse a bad cursor with the same 422."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Query

from agent.service.problems import ApiError
from agent.service.state import ServiceState
from agent.store import queries, ratings

ServiceFilter = Annotated[str | None, Query(max_length=200)]
PageLimit = Annotated[int | None, Query(ge=1, le=500)]
PageCursor = Annotated[str | None, Query(max_length=200)]


@dataclass(frozen=True)
class AnalysisListing:
    """One page of analyses, newest first; ``verdicts`` (analysis id -> latest rating) is
    filled only when asked for."""

    records: list[queries.AnalysisRecord]
    next_cursor: str | None
    verdicts: dict[str, str] = field(default_factory=dict)


def page_of_analyses(
    state: ServiceState,
    *,
    service: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    rating: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    with_verdicts: bool = False,
) -> AnalysisListing:
    """A page of the stored analyses (``limit`` defaults to ``service.page_size``); an
    unreadable cursor is a 422 on ``query.cursor``."""
    try:
        with state.sessions.begin() as session:
            records, next_cursor = queries.list_analyses(
                session,
                service=service,
                status=status,
                since=since,
                rating=rating,
                limit=limit or state.settings.service.page_size,
                cursor=cursor,
            )
            verdicts = (
                ratings.latest_verdicts(session, (r.id for r in records)) if with_verdicts else {}
            )
    except queries.BadCursor as exc:
        raise ApiError(422, "invalid", f"query.cursor: {exc}") from None
    return AnalysisListing(records, next_cursor, verdicts)
