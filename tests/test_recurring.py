"""The recurring-incidents stream (evals/simulator/recurring.py) and the benchmark's ratings
(evals/recurring.py); the benchmark itself is a command, not a test."""

from __future__ import annotations

import numpy as np
from conftest import build_analysis

from evals.recurring import _rating
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
