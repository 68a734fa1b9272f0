"""Benchmark incident memory's retrieval: the k most similar of N stored fingerprints.

Fingerprints are synthetic but shaped like real ones (``agent.memory.fingerprint``): systems
of 30 services, the fault types, a few dozen alert names, 3 weighted leading candidates,
about 20 observed signals, 4 roles and 5 masked log templates each. Two paths are timed,
each over ``--queries`` queries after one warm-up:

- ``index``: :meth:`agent.memory.index.MemoryIndex.similar` alone (the in-process part);
- ``store``: :meth:`agent.store.memory.Memory.similar` on a real database (SQLite file by
  default, or ``--database-url``): the index plus reading the k hits' fingerprints and
  ratings back, as ``GET /v1/analyses/{id}/similar`` does. With ``--embedding-dims D``
  every stored analysis also has a random unit text embedding of D dimensions, and each
  query one too: the store path then reads the top hits' embeddings and re-ranks them
  (``memory.embeddings``, weight 0.3), as it does with embeddings on.

Memory: the index's own arrays (:meth:`MemoryIndex.memory_bytes`) and the growth of the
process's peak RSS while it was built. Example::

    python -m evals.bench_memory --fingerprints 100000 --json-file out/bench_memory.json
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from sqlalchemy import insert
from sqlalchemy.orm import sessionmaker

from agent.memory.embed import Embedding
from agent.memory.fingerprint import Fingerprint
from agent.memory.index import MemoryIndex
from agent.models import FaultType
from agent.store.db import make_engine, migrate
from agent.store.memory import Memory
from agent.store.tables import AnalysisRow, FingerprintRow

SERVICES_PER_SYSTEM = 30
KINDS = ("latency", "errors", "resource", "saturation", "traffic", "log")
DIRECTIONS = ("up", "down", "new", "burst")
ROLES = ("root", "caller", "callee", "bystander")
FAULTS = [f.value for f in FaultType]
START = datetime(2025, 1, 1, tzinfo=UTC)
EMBEDDING_MODEL = "bench:random"
EMBEDDINGS_WEIGHT = 0.3


def synthetic(rng: np.random.Generator, systems: int) -> Fingerprint:
    """One fingerprint of a random incident in one of ``systems`` systems."""
    system = int(rng.integers(systems))
    services = [f"s{system}-svc{i}" for i in rng.choice(SERVICES_PER_SYSTEM, 6, replace=False)]
    faults = [FAULTS[int(i)] for i in rng.integers(len(FAULTS), size=3)]

    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    signals = {
        f"{services[int(rng.integers(6))]}|{pick(KINDS)}|{pick(DIRECTIONS)}": float(w)
        for w in rng.uniform(0.08, 1.0, 20).round(4)
    }
    roles = {f"{pick(ROLES)}|{pick(KINDS)}|{pick(DIRECTIONS)}": 1.0 for _ in range(4)}
    templates = {
        f"{services[int(rng.integers(6))]}: error {int(rng.integers(40))} calling <*>": 1.0
        for _ in range(5)
    }
    return Fingerprint(
        root_service=services[0],
        fault_type=faults[0],
        candidates=[f"{s}|{f}" for s, f in zip(services[:3], faults, strict=True)],
        candidate_weights=[1.0, *sorted(rng.uniform(0.05, 1.0, 2).round(4), reverse=True)],
        alert_name=f"Alert{int(rng.integers(40))}",
        labels={"severity": pick(("page", "warning")), "namespace": f"ns{system % 7}"},
        roles=roles,
        signals=signals,
        templates=templates,
    )


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def _unit_vectors(rng: np.random.Generator, count: int, dims: int) -> list[Embedding]:
    vectors = rng.standard_normal((count, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [Embedding(EMBEDDING_MODEL, v) for v in vectors]


def _fill_store(
    url: str, fingerprints: list[Fingerprint], embeddings: list[Embedding] | None
) -> sessionmaker:
    engine = make_engine(url, pool_size=2)
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    analyses, prints = [], []
    for n, fp in enumerate(fingerprints):
        when = START + timedelta(minutes=n)
        analysis_id = f"an-bench-{n:07d}"
        analyses.append(
            {
                "id": analysis_id,
                "trigger": "{}",
                "trigger_kind": "alert",
                "incident_start": when,
                "window_end": when,
                "status": "done",
                "attempts": 1,
                "not_before": when,
                "created_at": when,
            }
        )
        prints.append(
            {
                "analysis_id": analysis_id,
                "created_at": when,
                "stored_at": when,
                "fingerprint": fp.model_dump_json(),
                "embedding": embeddings[n].to_bytes() if embeddings else None,
                "embedding_model": EMBEDDING_MODEL if embeddings else None,
            }
        )
    with sessions.begin() as session:
        for chunk in range(0, len(analyses), 5000):
            session.execute(insert(AnalysisRow), analyses[chunk : chunk + 5000])
            session.execute(insert(FingerprintRow), prints[chunk : chunk + 5000])
    return sessions


def bench(
    count: int, queries: int, systems: int, k: int, url: str | None, dims: int = 0
) -> dict[str, object]:
    rng = np.random.default_rng(20)
    fingerprints = [synthetic(rng, systems) for _ in range(count)]
    probes = [synthetic(rng, systems) for _ in range(queries + 1)]
    stored = _unit_vectors(rng, count, dims) if dims else None
    asked = _unit_vectors(rng, queries + 1, dims) if dims else [None] * (queries + 1)
    rss_before = _rss_peak_mb()
    index = MemoryIndex()
    began = time.perf_counter()
    for n, fp in enumerate(fingerprints):
        index.add(f"an-bench-{n:07d}", (START + timedelta(minutes=n)).timestamp(), fp)
    build_s = time.perf_counter() - began
    rss_index = _rss_peak_mb() - rss_before
    index.similar(probes[0], k)
    index_times = []
    for probe in probes[1:]:
        t = time.perf_counter()
        index.similar(probe, k)
        index_times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        store_url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        sessions = _fill_store(store_url, fingerprints, stored)
        memory = Memory(
            sessions,
            None,
            lambda: START + timedelta(days=365),
            embeddings_weight=EMBEDDINGS_WEIGHT if dims else 0.0,
        )
        t = time.perf_counter()
        memory.sync()
        sync_s = time.perf_counter() - t
        memory.similar(probes[0], k, embedding=asked[0])
        store_times, hits, by_text = [], 0, 0
        for probe, embedding in zip(probes[1:], asked[1:], strict=True):
            t = time.perf_counter()
            found = memory.similar(probe, k, embedding=embedding)
            store_times.append(time.perf_counter() - t)
            hits += len(found)
            by_text += sum(any(" text (cosine" in r for r in past.reasons) for past in found)
        sessions.kw["bind"].dispose()
    return {
        "command": f"python -m evals.bench_memory --fingerprints {count} --queries {queries} "
        f"--systems {systems} -k {k}"
        + (f" --embedding-dims {dims}" if dims else "")
        + (" --database-url URL" if url else ""),
        "fingerprints": count,
        "queries": queries,
        "k": k,
        "database": "sqlite" if url is None else url.split(":", 1)[0],
        "embedding_dims": dims,
        "index": _percentiles(index_times),
        "store": _percentiles(store_times),
        "store_hits_scored_with_text": round(by_text / max(1, hits), 3),
        "index_build_s": round(build_s, 2),
        "store_first_sync_s": round(sync_s, 2),
        "index_arrays_mb": round(index.memory_bytes() / 2**20, 1),
        "rss_growth_building_index_mb": round(rss_index, 1),
    }


@click.command()
@click.option("--fingerprints", "count", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--queries", type=click.IntRange(10), default=500, show_default=True)
@click.option("--systems", type=click.IntRange(1), default=50, show_default=True)
@click.option("-k", "k", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--database-url", default=None, help="Time the store path on this database.")
@click.option(
    "--embedding-dims",
    "dims",
    type=click.IntRange(0, 4096),
    default=0,
    show_default=True,
    help="Give every analysis and query a random text embedding of this size (0: none).",
)
@click.option("--json-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    count: int,
    queries: int,
    systems: int,
    k: int,
    database_url: str | None,
    dims: int,
    json_file: Path | None,
) -> None:
    """Time retrieval of the k most similar of N stored fingerprints."""
    report = bench(count, queries, systems, k, database_url, dims)
    Console().print_json(json.dumps(report))
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
