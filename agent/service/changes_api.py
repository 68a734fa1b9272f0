"""``/v1/changes``: CI/CD reports deploys, config pushes and scales as they happen, like
Grafana annotations or Sentry releases; each analysis then weighs the changes of its window.

A report is refused (422, naming the field and the reason) when it is malformed, lies in the
future beyond ``service.changes_max_skew_s`` or is older than ``service.changes_retention_days``.
A service no analysis has named yet is stored and flagged (``known_service: false`` and a
warning), not refused: its telemetry may arrive later. A report that repeats a stored change
is answered 200 with the stored one (``outcome: duplicate``); a new one 201. While the
database is down the answer is 503 with ``Retry-After`` and nothing is stored, so a retrying
client loses nothing and, the store being idempotent, stores nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BeforeValidator

from agent.service.api import State, _timestamp_text
from agent.service.auth import require
from agent.service.problems import ApiError, known_query_only
from agent.service.schemas import (
    ChangePage,
    ChangeRecord,
    ChangeRequest,
    ChangeStored,
    ErrorBody,
)
from agent.store import changes as stored_changes

router = APIRouter(prefix="/v1/changes", tags=["changes"], dependencies=[Depends(known_query_only)])
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown token"},
    403: {"model": ErrorBody, "description": "the token lacks the scope"},
    503: {"model": ErrorBody, "description": "database unavailable: retry after Retry-After"},
}
Timestamp = Annotated[AwareDatetime | None, BeforeValidator(_timestamp_text)]


def _record(found: stored_changes.StoredChange) -> dict[str, Any]:
    return {
        "change": found.change,
        "known_service": found.known_service,
        "received_at": found.received_at,
    }


@router.post(
    "",
    operation_id="reportChange",
    status_code=201,
    response_model=ChangeStored,
    responses={
        **_AUTH,
        200: {"model": ChangeStored, "description": "a repeat of a stored change"},
        413: {"model": ErrorBody},
        422: {"model": ErrorBody, "description": "malformed, in the future or too old"},
    },
    dependencies=[Depends(require("write"))],
)
def post_change(body: ChangeRequest, state: State, response: Response) -> ChangeStored:
    """Report a change: 201 when stored, 200 when it repeats one stored before."""
    now = state.clock()
    service = state.settings.service
    skew = timedelta(seconds=service.changes_max_skew_s)
    retention = timedelta(days=service.changes_retention_days)
    if body.at > now + skew:
        raise ApiError(
            422,
            "invalid",
            f"body.at: {body.at.isoformat()} is in the future (more than "
            f"{service.changes_max_skew_s:g} s after the server's clock, "
            f"{now.isoformat()}): send the time the change was made",
        )
    if body.at < now - retention:
        raise ApiError(
            422,
            "invalid",
            f"body.at: {body.at.isoformat()} is older than the retention of changes "
            f"({service.changes_retention_days:g} days, service.changes_retention_days)",
        )
    with state.sessions.begin() as session:
        found, new = stored_changes.add_change(session, body.to_change(), now, retention)
    response.status_code = 201 if new else 200
    warnings = []
    if not found.known_service:
        warnings.append(
            f"no analysis has named service {found.change.service!r} yet; stored anyway "
            "(check the name if its telemetry calls it otherwise)"
        )
    return ChangeStored(**_record(found), outcome="new" if new else "duplicate", warnings=warnings)


@router.get(
    "",
    operation_id="listChanges",
    response_model=ChangePage,
    responses={**_AUTH, 422: {"model": ErrorBody}},
    dependencies=[Depends(require("read"))],
)
def list_changes(
    state: State,
    service: Annotated[str | None, Query(max_length=200)] = None,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    since: Timestamp = None,
    until: Timestamp = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> ChangePage:
    """Stored changes, oldest first, of one service or all (of one namespace or all), from
    ``since`` to ``until``."""
    size = limit or state.settings.service.page_size
    with state.sessions.begin() as session:
        found = stored_changes.list_changes(
            session,
            service=service,
            namespace=namespace,
            since=since,
            until=until,
            limit=size + 1,
        )
    items = [ChangeRecord(**_record(f)) for f in found[:size]]
    return ChangePage(items=items, truncated=len(found) > size)
