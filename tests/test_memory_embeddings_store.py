"""Optional text embeddings in incident memory, where they count: the hybrid score in the
store, the service on SQLite and PostgreSQL (stored vectors, a failing endpoint), and the
settings that cannot work. The embedders themselves are in test_memory_embeddings.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from memory_support import analysed, memory_service, similar_items
from openai_double import OpenAIDouble
from server_process import free_port
from sqlalchemy.orm import sessionmaker

from agent.config import InvalidSettings, load_settings
from agent.errors import ConfigError
from agent.memory.embed import Embedding, build_embedder, hybrid
from agent.memory.fingerprint import Fingerprint, weighted_jaccard
from agent.memory.settings import MemorySettings
from agent.store.db import database_url, make_engine, migrate
from agent.store.memory import Memory, store_fingerprint
from agent.store.tables import FingerprintRow

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
MODEL = "text-embedding-3-small"


# --- the hybrid score in the store -------------------------------------------------------


class Scripted:
    """An embedder whose vectors are given per text."""

    name = "scripted:v1"

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed(self, text: str) -> np.ndarray:
        return np.asarray(self.vectors[text], dtype=np.float32)


def _fp(signals: dict[str, float]) -> Fingerprint:
    return Fingerprint(
        root_service="checkout",
        fault_type="db_pool_exhaustion",
        candidates=["checkout|db_pool_exhaustion"],
        candidate_weights=[1.0],
        alert_name="CheckoutErrors",
        signals=signals,
    )


QUERY = _fp({"checkout|latency|up": 1.0, "checkout|errors|up": 1.0, "db|conns|up": 1.0})
# Closer by fingerprint, unlike in text:
A = _fp({"checkout|latency|up": 1.0, "checkout|errors|up": 1.0, "db|conns|up": 0.5})
# Further by fingerprint, the same text:
B = _fp({"checkout|latency|up": 1.0, "cache|errors|up": 1.0})
# Between them, no embedding:
C = _fp({"checkout|latency|up": 1.0, "checkout|errors|up": 1.0})
UNIT_X, UNIT_Y = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sessionmaker]:
    engine = make_engine(database_url(None, tmp_path))
    migrate(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _stored(sessions: sessionmaker, analysis_id: str, fp: Fingerprint, vector: Any) -> None:
    with sessions.begin() as session:
        session.execute(
            sa.text(
                "INSERT INTO analyses (id, trigger, trigger_kind, incident_start, window_end, "
                "status, attempts, not_before, created_at) "
                "VALUES (:id, '{}', 'alert', :at, :at, 'done', 1, :at, :at)"
            ),
            {"id": analysis_id, "at": NOW},
        )
        embedding = vector if vector is None or isinstance(vector, Embedding) else None
        if vector is not None and embedding is None:
            embedding = Embedding(Scripted.name, np.asarray(vector, dtype=np.float32))
        store_fingerprint(session, analysis_id, NOW, fp, NOW, embedding)


def _memory(sessions: sessionmaker, weight: float) -> Memory:
    return Memory(sessions, None, lambda: NOW + timedelta(hours=1), 0.0, Scripted({}), weight)


def test_the_text_reranks_the_fingerprints_top_hits(store: sessionmaker) -> None:
    _stored(store, "a", A, UNIT_X)
    _stored(store, "b", B, UNIT_Y)
    _stored(store, "c", C, None)
    memory = _memory(store, 0.5)
    query = Embedding(Scripted.name, np.asarray(UNIT_Y, dtype=np.float32))

    plain = memory.similar(QUERY, 3)
    assert [p.analysis_id for p in plain] == ["a", "c", "b"]
    mixed = {p.analysis_id: p for p in memory.similar(QUERY, 3, embedding=query)}
    past = {"a": A, "b": B, "c": C}
    j = {k: round(weighted_jaccard(QUERY.features(), fp.features()), 4) for k, fp in past.items()}
    assert mixed["b"].similarity == hybrid(j["b"], 1.0, 0.5)
    assert mixed["a"].similarity == hybrid(j["a"], 0.0, 0.5)
    assert mixed["c"].similarity == j["c"]  # no embedding: its Jaccard
    # b (Jaccard 0.75, the same text) passes a (0.95, unlike text); c keeps its 0.91
    assert [p.analysis_id for p in memory.similar(QUERY, 3, embedding=query)] == ["c", "b", "a"]
    assert "similar text (cosine 1.00)" in mixed["b"].reasons
    assert "unlike text (cosine 0.00)" in mixed["a"].reasons  # lowered by it, and says so
    assert not any(" text (cosine" in r for r in mixed["c"].reasons)


def test_vectors_of_another_model_are_not_compared(store: sessionmaker) -> None:
    _stored(store, "a", A, Embedding("openai:other", np.asarray(UNIT_Y, dtype=np.float32)))
    memory = _memory(store, 0.5)
    query = Embedding(Scripted.name, np.asarray(UNIT_Y, dtype=np.float32))
    (hit,) = memory.similar(QUERY, 3, embedding=query)
    assert hit.similarity == round(weighted_jaccard(QUERY.features(), A.features()), 4)
    assert memory.embedding_of("a") is None  # another model's vector is not this memory's


def test_the_cosine_can_lift_a_hit_over_min_similarity(store: sessionmaker) -> None:
    _stored(store, "b", B, UNIT_Y)
    j = weighted_jaccard(QUERY.features(), B.features())
    memory = _memory(store, 0.5)
    query = Embedding(Scripted.name, np.asarray(UNIT_Y, dtype=np.float32))
    assert memory.similar(QUERY, 3, min_similarity=j + 0.01) == []
    (hit,) = memory.similar(QUERY, 3, min_similarity=j + 0.01, embedding=query)
    assert hit.analysis_id == "b"


# --- the service, on SQLite and PostgreSQL -----------------------------------------------


def _row(client: TestClient, analysis_id: str) -> FingerprintRow:
    state = client.app.state.rca  # type: ignore[attr-defined]
    with state.sessions.begin() as session:
        row: FingerprintRow = session.get(FingerprintRow, analysis_id)
        return row


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_service_stores_embeddings_and_mixes_in_the_cosine(
    tmp_path: Path, backend: str
) -> None:
    with OpenAIDouble() as api:
        memory = {"embeddings": "openai", "embeddings_url": api.base_url, "embeddings_model": MODEL}
        with memory_service(tmp_path, backend, memory=memory) as client:
            first = analysed(client, "g1")
            second = analysed(client, "g2")
            row = _row(client, first["id"])
            assert row.embedding_model == f"openai:{MODEL}"
            assert row.embedding is not None and len(row.embedding) == 64 * 4  # float32
            sent = api.embedding_requests[0].body["input"][0]
            assert sent.startswith(first["analysis"]["summary"][:40])
            (match,) = similar_items(client, second["id"])
            assert match["analysis_id"] == first["id"]
            assert "similar text (cosine 1.00)" in match["reasons"]
            assert not any("no text embedding" in n for n in second["analysis"]["notes"])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_embeddings_endpoint_that_is_down_fails_nothing(tmp_path: Path, backend: str) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    memory = {"embeddings": "openai", "embeddings_url": down, "embeddings_model": MODEL}
    with memory_service(tmp_path, backend, memory=memory) as client:
        first = analysed(client, "g1")
        second = analysed(client, "g2")
        assert _row(client, first["id"]).embedding is None
        notes = " ".join(second["analysis"]["notes"])
        assert "incident memory: no text embedding" in notes and "fingerprint only" in notes
        (match,) = similar_items(client, second["id"])
        assert match["analysis_id"] == first["id"] and match["similarity"] == 1.0
        assert not any(" text (cosine" in r for r in match["reasons"])


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "named"),
    [
        ({"embeddings": "openai", "embeddings_model": MODEL}, "memory.embeddings_url"),
        ({"embeddings": "openai", "embeddings_url": "http://e/v1"}, "memory.embeddings_model"),
        ({"embeddings": "openai", "embeddings_url": "ftp://e", "embeddings_model": MODEL}, "URL"),
        ({"embeddings": "local"}, "memory.embeddings_dir"),
        ({"embeddings": "local", "embeddings_dir": "/nonexistent/model"}, "not a directory"),
        ({"embeddings_weight": 1.5}, "memory.embeddings_weight"),
    ],
)
def test_embedding_settings_that_cannot_work_are_refused_naming_the_field(
    memory: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidSettings) as refused:
        load_settings(memory=memory)
    assert named in str(refused.value)


def test_the_api_key_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCA_MEMORY__EMBEDDINGS", "openai")
    monkeypatch.setenv("RCA_MEMORY__EMBEDDINGS_URL", "http://embed:8000/v1")
    monkeypatch.setenv("RCA_MEMORY__EMBEDDINGS_MODEL", MODEL)
    monkeypatch.setenv("RCA_MEMORY__EMBEDDINGS_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert settings.memory.embeddings_api_key is not None
    assert settings.memory.embeddings_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings.memory)


def test_local_embeddings_without_the_extra_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    settings = MemorySettings(embeddings="local", embeddings_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"pip install 'rca-agent\[local\]'"):
        build_embedder(settings)
    assert build_embedder(MemorySettings()) is None
