"""The retrieval benchmark runs as a command (its numbers go to docs/benchmarks.md, not into
assertions): a small run with and without text embeddings."""

from __future__ import annotations

import pytest

from evals.bench_memory import bench


@pytest.mark.parametrize("dims", [0, 16])
def test_the_benchmark_times_both_paths_and_says_what_it_ran(dims: int) -> None:
    report = bench(300, 10, 3, 5, None, dims)
    assert report["fingerprints"] == 300 and report["embedding_dims"] == dims
    assert ("--embedding-dims 16" in str(report["command"])) == (dims == 16)
    for path in ("index", "store"):
        times = report[path]
        assert isinstance(times, dict)
        assert 0 < times["p50_ms"] <= times["p95_ms"] <= times["max_ms"]
    assert isinstance(report["index_arrays_mb"], float) and report["index_arrays_mb"] > 0
    # With embeddings, every hit the store returns was re-ranked with its text's cosine.
    assert report["store_hits_scored_with_text"] == (1.0 if dims else 0.0)
