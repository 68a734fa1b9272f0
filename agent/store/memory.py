"""Incident memory in the store: fingerprints beside their analyses, and the index over them.

The ``fingerprints`` table is the truth; each process keeps a :class:`~agent.memory.index.
MemoryIndex` over it, loads what is new on each query (by ``stored_at``), and checks the top
hits against the table before it answers, so an analysis deleted or forgotten by another
replica is never shown. What a past analysis brings back (verdict, corrected root cause,
resolution) is read from ``feedback`` for those few hits only; a rating also writes the root
cause it confirms beside the fingerprint (:func:`confirm_fingerprint`), where it counts for
similarity.

With text embeddings on (``memory.embeddings``), the index still ranks by fingerprint alone;
the top :data:`RERANK_POOL` (at least) of its hits are read back with their embeddings, and a
hit whose embedding was made by the same model as the query's gets the hybrid score
(:func:`agent.memory.embed.hybrid`). Hits without one keep their Jaccard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.memory.embed import Embedder, Embedding, cosine, from_bytes, hybrid
from agent.memory.fingerprint import Fingerprint, confirmed_token, similarity
from agent.memory.index import Hit, MemoryIndex
from agent.memory.recall import PastIncident, confirmed_cause
from agent.store.tables import Feedback, FingerprintRow

SYNC_OVERLAP = timedelta(seconds=5)  # rows committed out of stored_at order are still seen
RERANK_POOL = 50  # hits by fingerprint whose text is compared, at least (k * 10 when more)
SIMILAR_TEXT = 0.5  # a cosine under this is reported as unlike text, not similar


def store_fingerprint(
    session: Session,
    analysis_id: str,
    created_at: datetime,
    fp: Fingerprint,
    now: datetime,
    embedding: Embedding | None = None,
) -> None:
    """Store (or replace) the fingerprint of one analysis, and its text embedding if any,
    in the caller's transaction."""
    session.execute(delete(FingerprintRow).where(FingerprintRow.analysis_id == analysis_id))
    session.add(
        FingerprintRow(
            analysis_id=analysis_id,
            created_at=created_at,
            stored_at=now,
            fingerprint=fp.model_dump_json(),
            confirmed=fp.confirmed,
            embedding=embedding.to_bytes() if embedding is not None else None,
            embedding_model=embedding.model if embedding is not None else None,
        )
    )


def text_cosines(session: Session, ids: Sequence[str], query: Embedding) -> dict[str, float]:
    """Analysis id -> the cosine of its stored embedding with ``query``, for those of
    ``ids`` embedded by the same model (read for these rows only)."""
    rows = session.execute(
        select(FingerprintRow.analysis_id, FingerprintRow.embedding).where(
            FingerprintRow.analysis_id.in_(ids),
            FingerprintRow.embedding_model == query.model,
            FingerprintRow.embedding.is_not(None),
        )
    ).all()
    out = {}
    for analysis_id, data in rows:
        cos = cosine(query.vector, from_bytes(data)) if data is not None else None
        if cos is not None:
            out[analysis_id] = cos
    return out


def _text_reason(cos: float) -> str:
    """What the text's cosine says, in words that match its number: it mixes into the
    score either way, lowering it for unlike text."""
    alike = "similar" if cos >= SIMILAR_TEXT else "unlike"
    return f"{alike} text (cosine {cos:.2f})"


def rerank(
    hits: Sequence[Hit], cosines: dict[str, float], weight: float, least: float
) -> list[Hit]:
    """The hits with the text's cosine mixed in where there is one, best first (ties keep
    the index's order), those under ``least`` left out."""
    mixed = [
        Hit(h.analysis_id, hybrid(h.similarity, cosines[h.analysis_id], weight))
        if h.analysis_id in cosines
        else h
        for h in hits
    ]
    return sorted((h for h in mixed if h.similarity >= least), key=lambda h: -h.similarity)


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
    row.confirmed = confirmed_token(
        *confirmed_cause(fp.root_service, fp.fault_type, verdict, actual_service, actual_fault_type)
    )
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


def past_incidents(
    session: Session,
    query: Fingerprint,
    hits: Sequence[Hit],
    cosines: dict[str, float] | None = None,
) -> list[PastIncident]:
    """The hits that are still stored, with their reasons (and the text's ``cosines`` where
    they counted), verdicts and resolutions."""
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
        reasons = similarity(query, past).reasons
        if cosines and hit.analysis_id in cosines:
            reasons.append(_text_reason(cosines[hit.analysis_id]))
        found.append(
            PastIncident(
                analysis_id=hit.analysis_id,
                created_at=row.created_at,
                similarity=hit.similarity,
                reasons=reasons,
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
    the report page and the Slack publisher of one process. ``embedder`` (optional) embeds
    each finished analysis's text (the workers call it); its cosine counts at
    ``embeddings_weight``."""

    def __init__(
        self,
        sessions: sessionmaker,
        retention_days: float | None,
        clock: Callable[[], datetime],
        min_similarity: float = 0.0,
        embedder: Embedder | None = None,
        embeddings_weight: float = 0.0,
    ) -> None:
        self.sessions = sessions
        self.retention = timedelta(days=retention_days) if retention_days else None
        self.clock = clock
        self.min_similarity = min_similarity
        self.embedder = embedder
        self.embeddings_weight = embeddings_weight
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
        embedding: Embedding | None = None,
    ) -> list[PastIncident]:
        """The ``k`` most similar stored analyses (not ``exclude``), best first: one
        transaction loads what is new, then reads the hits back. With the query's text
        ``embedding``, the top hits by fingerprint are re-ranked with their text's cosine."""
        if k <= 0:
            return []
        cutoff = self.cutoff()
        least = self.min_similarity if min_similarity is None else min_similarity
        mixing = embedding is not None and self.embeddings_weight > 0
        spare = k + 5  # a few spare for rows deleted elsewhere since they were indexed
        with self.sessions.begin() as session:
            self.sync(session)
            hits = self.index.similar(
                fp,
                max(k * 10, RERANK_POOL) if mixing else spare,
                exclude=exclude,
                not_before=cutoff.timestamp() if cutoff else None,
                min_similarity=0.0 if mixing else least,  # the cosine may lift a hit over it
            )
            cosines: dict[str, float] = {}
            if embedding is not None and mixing and hits:
                cosines = text_cosines(session, [h.analysis_id for h in hits], embedding)
                hits = rerank(hits, cosines, self.embeddings_weight, least)[:spare]
            return past_incidents(session, fp, hits, cosines)[:k]

    def fingerprint_of(self, analysis_id: str) -> Fingerprint | None:
        with self.sessions.begin() as session:
            row = session.execute(
                select(FingerprintRow.fingerprint, FingerprintRow.confirmed).where(
                    FingerprintRow.analysis_id == analysis_id
                )
            ).first()
        return _read(*row) if row is not None else None

    def embedding_of(self, analysis_id: str) -> Embedding | None:
        """The stored text embedding of an analysis, when it was made by this memory's
        embedder's model (else None: similarity uses the fingerprint alone)."""
        if self.embedder is None:
            return None
        with self.sessions.begin() as session:
            row = session.execute(
                select(FingerprintRow.embedding, FingerprintRow.embedding_model).where(
                    FingerprintRow.analysis_id == analysis_id
                )
            ).first()
        if row is None or row[0] is None or row[1] != self.embedder.name:
            return None
        return Embedding(row[1], from_bytes(row[0]))

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
