"""Changes reported by CI/CD: stored once however often they are posted, read by window.

A deploy pipeline retries when it is unsure its report arrived, and Argo CD notifies every
sync; so each report has a key (:func:`change_key`) and a report whose key is stored already
is a duplicate, answered with the stored change. Two reports racing on one key both succeed:
the loser's insert fails on the unique key inside a savepoint and it reads the winner's row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.models import Change, ChangeKind
from agent.store.tables import AnalysisRow, AnalysisService, ChangeRow


@dataclass(frozen=True)
class StoredChange:
    change: Change
    known_service: bool
    received_at: datetime


def change_key(change: Change) -> str:
    """One change, however often reported: the reporter's ``id`` for it within the service
    (a CI run may deploy several services), else its service, kind, new version and time.

    A namespace, when given, is part of the key: ``checkout`` in ``staging`` and in ``prod``
    are two Deployments, and one CI run or one release may roll out both. Without one the key
    is what it was before namespaces were stored, so a retry after an upgrade still finds
    the row its first attempt wrote."""
    if change.id:
        parts = ["id", change.service, change.id]
    else:
        parts = ["at", change.service, change.kind, change.to_version or "", change.at.isoformat()]
    if change.namespace:
        parts += ["namespace", change.namespace]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def known_service(session: Session, service: str) -> bool:
    """Whether an analysis has been about ``service``: asked about, alerted on, or named as
    the root cause. A change of any other service is stored all the same (its telemetry may
    come later); the reporter is told, as the name may be a typo."""
    asked = exists().where(AnalysisService.service == service)
    named = exists().where(AnalysisRow.root_service == service)
    return bool(session.scalar(select(or_(asked, named))))


def _record(row: ChangeRow) -> StoredChange:
    change = Change(
        service=row.service,
        namespace=row.namespace,
        kind=ChangeKind(row.kind),
        at=row.at,
        from_version=row.from_version,
        to_version=row.to_version,
        author=row.author,
        link=row.link,
        source=row.source,
        id=row.client_id,
    )
    return StoredChange(change, row.known_service, row.received_at)


def add_change(
    session: Session, change: Change, now: datetime, retention: timedelta
) -> tuple[StoredChange, bool]:
    """Store ``change`` unless it is stored already; (the stored change, whether it is new).

    Changes older than ``retention`` are deleted on the way, so the table stays small.
    """
    session.execute(delete(ChangeRow).where(ChangeRow.at < now - retention))
    key = change_key(change)
    found = session.scalar(select(ChangeRow).where(ChangeRow.key == key))
    if found is not None:
        return _record(found), False
    row = ChangeRow(
        key=key,
        service=change.service,
        namespace=change.namespace,
        kind=change.kind.value,
        at=change.at,
        from_version=change.from_version,
        to_version=change.to_version,
        author=change.author,
        link=change.link,
        source=change.source,
        client_id=change.id,
        known_service=known_service(session, change.service),
        received_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another request stored the same change a moment ago
        winner = session.scalar(select(ChangeRow).where(ChangeRow.key == key))
        if winner is None:
            raise
        return _record(winner), False
    return _record(row), True


def list_changes(
    session: Session,
    *,
    service: str | None = None,
    namespace: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
) -> list[StoredChange]:
    """Stored changes in time order, oldest first."""
    query = select(ChangeRow)
    if service is not None:
        query = query.where(ChangeRow.service == service)
    if namespace is not None:
        query = query.where(ChangeRow.namespace == namespace)
    if since is not None:
        query = query.where(ChangeRow.at >= since)
    if until is not None:
        query = query.where(ChangeRow.at <= until)
    rows = session.scalars(query.order_by(ChangeRow.at, ChangeRow.id).limit(limit))
    return [_record(row) for row in rows]
