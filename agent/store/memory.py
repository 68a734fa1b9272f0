"""Incident memory in the store: fingerprints beside their analyses, and the index over them.

The ``fingerprints`` table is the truth; each process keeps a :class:`~agent.memory.index.
MemoryIndex` over it, loads what is new on each query (by ``stored_at``), and checks the top
hits against the table before it answers, so an analysis deleted or forgotten by another
replica is never shown. What a past analysis brings back (verdict, corrected root cause,
resolution) is read from ``feedback`` for those few hits only; a rating also writes the root
cause it confirms beside the fingerprint (:func:`confirm_fingerprint`), where it counts for
similarity.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.memory.fingerprint import Fingerprint, similarity
from agent.memory.index import Hit, MemoryIndex
from agent.memory.recall import PastIncident, confirmed_cause
from agent.store.tables import Feedback, FingerprintRow

SYNC_OVERLAP = timedelta(seconds=5)  # rows committed out of stored_at order are still seen


def store_fingerprint(
    session: Session, analysis_id: str, created_at: datetime, fp: Fingerprint, now: datetime
) -> None:
    """Store (or replace) the fingerprint of one analysis, in the caller's transaction."""
    session.execute(delete(FingerprintRow).where(FingerprintRow.analysis_id == analysis_id))
    session.add(
        FingerprintRow(
            analysis_id=analysis_id,
            created_at=created_at,
            stored_at=now,
            fingerprint=fp.model_dump_json(),
            confirmed=fp.confirmed,
        )
    )


def _read(text: str, confirmed: str | None) -> Fingerprint:
    """A stored fingerprint with the cause its latest rating confirmed."""
    return Fingerprint.model_validate_json(text).model_copy(update={"confirmed": confirmed})


def confirm_fingerprint(
    session: Session,
    analysis_id: str,
    verdict: str,
    actual_service: str | None,
    actual_fault_type: str | None,
    now: datetime,
) -> bool:
    """Write what a new rating confirms beside the analysis's fingerprint, in the rating's
    transaction: the latest rating wins, and one that confirms nothing (``wrong`` naming no
    service) clears it. ``stored_at`` moves to ``now``, so every process's index loads the
    row again. False when the analysis has no fingerprint (memory off, or not done)."""
    row = session.get(FingerprintRow, analysis_id)
    if row is None:
        return False
    fp = Fingerprint.model_validate_json(row.fingerprint)
    service, fault = confirmed_cause(
        fp.root_service, fp.fault_type, verdict, actual_service, actual_fault_type
    )
    row.confirmed = fp.confirmed_as(service, fault).confirmed
    row.stored_at = now
    return True


def purge(session: Session, before: datetime) -> int:
    """Forget fingerprints of analyses created before ``before`` (retention)."""
    done = session.execute(delete(FingerprintRow).where(FingerprintRow.created_at < before))
    return int(done.rowcount)  # type: ignore[attr-defined]


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(FingerprintRow)) or 0)


def _outcomes(session: Session, ids: Sequence[str]) -> dict[str, tuple[Feedback, Feedback | None]]:
    """Analysis id -> (its latest rating, its latest rating that says what fixed it)."""
    rows = session.scalars(
        select(Feedback).where(Feedback.analysis_id.in_(ids)).order_by(Feedback.id)
    ).all()
    out: dict[str, tuple[Feedback, Feedback | None]] = {}
    for row in rows:
        fixed = row if row.resolution or row.resolution_url else None
        earlier = out.get(row.analysis_id)
        out[row.analysis_id] = (row, fixed or (earlier[1] if earlier else None))
    return out


def past_incidents(session: Session, query: Fingerprint, hits: Sequence[Hit]) -> list[PastIncident]:
    """The hits that are still stored, with their reasons, verdicts and resolutions."""
    ids = [h.analysis_id for h in hits]
    if not ids:
        return []
    stored = {
        row.analysis_id: row
        for row in session.scalars(
            select(FingerprintRow).where(FingerprintRow.analysis_id.in_(ids))
        )
    }
    outcomes = _outcomes(session, ids)
    found = []
    for hit in hits:
        row = stored.get(hit.analysis_id)
        if row is None:
            continue  # deleted or forgotten since this process indexed it
        past = _read(row.fingerprint, row.confirmed)
        latest, fixed = outcomes.get(hit.analysis_id, (None, None))
        verdict = latest.verdict if latest else None
        service, fault = confirmed_cause(
            past.root_service,
            past.fault_type,
            verdict,
            latest.actual_service if latest else None,
            latest.actual_fault_type if latest else None,
        )
        found.append(
            PastIncident(
                analysis_id=hit.analysis_id,
                created_at=row.created_at,
                similarity=hit.similarity,
                reasons=similarity(query, past).reasons,
                root_service=past.root_service,
                fault_type=past.fault_type,
                verdict=verdict,
                confirmed_service=service,
                confirmed_fault_type=fault,
                resolution=fixed.resolution if fixed else None,
                resolution_url=fixed.resolution_url if fixed else None,
            )
        )
    return found


class Memory:
    """The store's fingerprints behind one in-process index; shared by the workers, the API,
    the report page and the Slack publisher of one process."""

    def __init__(
        self,
        sessions: sessionmaker,
        retention_days: float | None,
        clock: Callable[[], datetime],
        min_similarity: float = 0.0,
    ) -> None:
        self.sessions = sessions
        self.retention = timedelta(days=retention_days) if retention_days else None
        self.clock = clock
        self.min_similarity = min_similarity
        self.index = MemoryIndex()
        self._synced: datetime | None = None
        self._indexed: dict[str, datetime] = {}  # analysis id -> stored_at as indexed
        self._sync_lock = threading.Lock()

    def cutoff(self) -> datetime | None:
        return self.clock() - self.retention if self.retention else None

    def sync(self, session: Session | None = None) -> int:
        """Index the fingerprints stored since the last sync (in ``session``, else a new
        one); returns how many were new to this process."""
        with self._sync_lock:
            query = select(
                FingerprintRow.analysis_id,
                FingerprintRow.created_at,
                FingerprintRow.stored_at,
                FingerprintRow.fingerprint,
                FingerprintRow.confirmed,
            )
            if self._synced is not None:
                query = query.where(FingerprintRow.stored_at >= self._synced - SYNC_OVERLAP)
            query = query.order_by(FingerprintRow.stored_at)
            if session is None:
                with self.sessions.begin() as own:
                    rows = own.execute(query).all()
            else:
                rows = session.execute(query).all()
            added = 0
            for analysis_id, created_at, stored_at, text, confirmed in rows:
                if self._indexed.get(analysis_id) == stored_at:
                    continue  # read again through the overlap: already indexed
                fp = _read(text, confirmed)
                self.index.add(analysis_id, created_at.timestamp(), fp)
                self._indexed[analysis_id] = stored_at
                added += 1
                if self._synced is None or stored_at > self._synced:
                    self._synced = stored_at
            return added

    def similar(
        self,
        fp: Fingerprint,
        k: int,
        exclude: str | None = None,
        min_similarity: float | None = None,
    ) -> list[PastIncident]:
        """The ``k`` most similar stored analyses (not ``exclude``), best first: one
        transaction loads what is new, then reads the hits back."""
        if k <= 0:
            return []
        cutoff = self.cutoff()
        least = self.min_similarity if min_similarity is None else min_similarity
        with self.sessions.begin() as session:
            self.sync(session)
            hits = self.index.similar(
                fp,
                k + 5,  # a few spare for rows deleted elsewhere since they were indexed
                exclude=exclude,
                not_before=cutoff.timestamp() if cutoff else None,
                min_similarity=least,
            )
            return past_incidents(session, fp, hits)[:k]

    def fingerprint_of(self, analysis_id: str) -> Fingerprint | None:
        with self.sessions.begin() as session:
            row = session.execute(
                select(FingerprintRow.fingerprint, FingerprintRow.confirmed).where(
                    FingerprintRow.analysis_id == analysis_id
                )
            ).first()
        return _read(*row) if row is not None else None

    def forget(self, analysis_id: str) -> None:
        """Drop an analysis from this process's index (its rows are deleted by the caller)."""
        self.index.remove(analysis_id)
        self._indexed.pop(analysis_id, None)

    def purge(self) -> int:
        """Delete fingerprints past retention; returns how many."""
        cutoff = self.cutoff()
        if cutoff is None:
            return 0
        with self.sessions.begin() as session:
            return purge(session, cutoff)
