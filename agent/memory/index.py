"""An in-process index of stored fingerprints: the k most similar in milliseconds.

An inverted index (feature token -> the rows that hold it and their weights, as packed
``int32``/``float32`` arrays) with each row's total feature weight. A query adds, token by
token, the smaller of its weight and each row's into one ``float64`` array with numpy (the
shared weight per row), turns that into the weighted Jaccard of
:func:`agent.memory.fingerprint.weighted_jaccard` (shared / (row total + query total -
shared)) and keeps the top k with ``argpartition``. Only rows that share a token are touched,
so the cost grows with how common the query's tokens are, not with every feature of every
row.

Sizes (``python -m evals.bench_memory``, docs/benchmarks.md): 100,000 fingerprints take about
tens of MB and answer in a few ms at p95. Past a few million rows, or with several replicas
that should not each hold a copy, move the features into the database: PostgreSQL with
pgvector (embeddings) or a GIN index over the token array, scored in SQL.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from agent.memory.fingerprint import Fingerprint


@dataclass(frozen=True)
class Hit:
    analysis_id: str
    similarity: float


class MemoryIndex:
    """Add, remove and query fingerprints; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._created = array("d")
        self._totals = array("d")
        self._alive = bytearray()
        self._vocab: dict[str, int] = {}
        self._postings: list[array[int]] = []
        self._weights: list[array[float]] = []

    def __len__(self) -> int:
        return sum(self._alive)

    def add(self, analysis_id: str, created_at: float, fingerprint: Fingerprint) -> None:
        """Index one fingerprint; adding an id again replaces its earlier entry."""
        features = fingerprint.features()
        with self._lock:
            old = self._row_of.get(analysis_id)
            if old is not None:
                self._alive[old] = 0
            row = len(self._ids)
            self._ids.append(analysis_id)
            self._row_of[analysis_id] = row
            self._created.append(created_at)
            self._totals.append(sum(features.values()))
            self._alive.append(1)
            for token, weight in features.items():
                tid = self._vocab.get(token)
                if tid is None:
                    tid = self._vocab[token] = len(self._postings)
                    self._postings.append(array("i"))
                    self._weights.append(array("f"))
                self._postings[tid].append(row)
                self._weights[tid].append(weight)

    def remove(self, analysis_id: str) -> bool:
        with self._lock:
            row = self._row_of.pop(analysis_id, None)
            if row is None:
                return False
            self._alive[row] = 0
            return True

    def similar(
        self,
        fingerprint: Fingerprint,
        k: int,
        *,
        exclude: str | None = None,
        not_before: float | None = None,
        min_similarity: float = 0.0,
    ) -> list[Hit]:
        """The ``k`` most similar live rows, best first (ties: the newer first)."""
        return self.similar_features(
            fingerprint.features(),
            k,
            exclude=exclude,
            not_before=not_before,
            min_similarity=min_similarity,
        )

    def similar_features(
        self,
        features: Mapping[str, float],
        k: int,
        *,
        exclude: str | None = None,
        not_before: float | None = None,
        min_similarity: float = 0.0,
    ) -> list[Hit]:
        # All under the lock: numpy views of the arrays must be gone before ``add`` grows them
        # (an ``array`` that exports its buffer cannot be resized).
        with self._lock:
            n = len(self._ids)
            if n == 0 or k <= 0:
                return []
            shared = np.zeros(n)
            for token, weight in features.items():
                tid = self._vocab.get(token)
                if tid is not None:
                    members = np.frombuffer(self._postings[tid], dtype=np.int32)
                    held = np.frombuffer(self._weights[tid], dtype=np.float32)
                    shared[members] += np.minimum(held, weight)
                    del members, held
            totals = np.frombuffer(self._totals, dtype=np.float64).copy()
            alive = np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
            created = np.frombuffer(self._created, dtype=np.float64).copy()
            ids = self._ids[:]
            if exclude is not None and (row := self._row_of.get(exclude)) is not None:
                alive[row] = False
        union = totals + sum(features.values()) - shared
        score = np.where(union > 0, shared / np.maximum(union, 1e-12), 0.0)
        keep = alive & (shared > 0) & (score >= min_similarity)
        if not_before is not None:
            keep &= created >= not_before
        rows = np.flatnonzero(keep)
        if rows.size > k:
            rows = rows[np.argpartition(-score[rows], k - 1)[:k]]
        best = sorted(rows.tolist(), key=lambda r: (-score[r], -created[r]))
        return [Hit(ids[r], round(float(score[r]), 4)) for r in best]

    def memory_bytes(self) -> int:
        """Rough size of the index's own arrays and tables (what ``bench_memory`` reports
        next to the process's RSS)."""
        arrays = 2 * sum(p.buffer_info()[1] * p.itemsize for p in self._postings)
        per_row = len(self._ids) * (8 + 8 + 1 + 8 + 60)  # created, total, alive, list slot, id
        vocab = sum(60 + len(t) for t in self._vocab)
        return arrays + per_row + vocab
