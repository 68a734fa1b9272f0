"""The recurring-incidents stream (evals/simulator/recurring.py) and the benchmark's ratings
(evals/recurring.py); the benchmark itself is a command, not a test."""

from __future__ import annotations

import numpy as np
from conftest import build_analysis

from agent.memory.fingerprint import fingerprint_of
from evals.recurring import EPOCH, Memory, Rating, _rating
from evals.simulator.recurring import recurring_stream


def test_twins_repeat_the_cause_with_other_pods_timing_and_noise() -> None:
    stream = list(recurring_stream(5, 8, repeat_share=0.9))
    again = list(recurring_stream(5, 8, repeat_share=0.9))
    assert [r.cause for r in stream] == [r.cause for r in again]  # seeded
    twins = [r for r in stream if r.twin is not None]
    assert twins and all(r.twin is not None and r.twin < r.index for r in twins)
    for repeat in twins:
        earlier = stream[repeat.twin]  # type: ignore[index]
        assert repeat.cause == earlier.cause and repeat.system == earlier.system
        pods = {p for s in repeat.scenario.graph.services if s.is_app for p in s.pods}
        assert pods.isdisjoint(
            {p for s in earlier.scenario.graph.services if s.is_app for p in s.pods}
        )  # a new ReplicaSet of every Deployment (StatefulSet pods keep their names)
        first, second = earlier.scenario.snapshot, repeat.scenario.snapshot
        assert first.meta.window.start != second.meta.window.start
        assert first.signals[0].values != second.signals[0].values


def test_ratings_tell_the_truth_unless_told_to_lie() -> None:
    rng = np.random.default_rng(1)
    answer = build_analysis()  # leads with payments; checkout and frontend follow
    right, wrong = ("payments", "memory_leak"), ("checkout", "network_latency")
    assert _rating(answer, right, False, rng).verdict == "correct"
    told = _rating(answer, wrong, False, rng)
    assert (told.verdict, told.actual_service) == ("wrong", "checkout")
    assert _rating(answer, wrong, True, rng).verdict == "correct"  # a wrong answer confirmed
    lie = _rating(answer, right, True, rng)
    assert lie.verdict == "wrong" and lie.actual_service in {"checkout", "frontend"}


def test_memory_remembers_the_cause_each_rating_confirms() -> None:
    """As in the service, a rated answer's fingerprint holds the cause the rating confirmed,
    so the benchmark measures retrieval by that cause."""
    memory = Memory()
    fp = fingerprint_of(build_analysis())  # leads with payments (memory_leak)
    memory.remember("a", EPOCH, fp, Rating("wrong", "checkout", "network_latency"), ("x", "y"))
    memory.remember("b", EPOCH, fp, Rating("correct", None, None), ("x", "y"))
    memory.remember("c", EPOCH, fp, Rating("wrong", None, None), ("x", "y"))
    confirmed = {key: memory.stored[key].confirmed for key in "abc"}
    assert confirmed == {"a": "checkout|network_latency", "b": "payments|memory_leak", "c": None}
    query = fp.model_copy(update={"confirmed": "checkout|network_latency"})
    assert memory.index.similar(query, 1)[0].analysis_id == "a"


def test_the_text_breaks_a_tie_between_equally_similar_fingerprints() -> None:
    """With text embeddings, the benchmark re-ranks the fingerprint's hits as the service's
    lookups do: of two past analyses with the same fingerprint, the one whose text is closer
    comes first, whichever the fingerprint alone put first."""
    memory = Memory()
    fp = fingerprint_of(build_analysis())
    for key in ("near", "far"):
        memory.remember(key, EPOCH, fp, Rating("correct", None, None), ("x", "y"))
    memory.texts = {"near": np.array([1.0, 0.0]), "far": np.array([0.0, 1.0])}
    assert memory.top_with_text(fp, np.array([0.8, 0.6]), 0.3) == "near"
    assert memory.top_with_text(fp, np.array([0.6, 0.8]), 0.3) == "far"
    assert (
        memory.top_with_text(fp, np.array([0.6, 0.8]), 0.0)
        == memory.index.similar(fp, 1)[0].analysis_id
    )
