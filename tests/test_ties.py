"""A tie for first place is said to be one: candidates of equal score are listed by name, and
the first of them is no likelier than the rest."""

from __future__ import annotations

from pathlib import Path

from conftest import build_analysis

from agent.engine.pipeline import analyze
from agent.models import FaultType
from agent.snapshot import load_snapshot
from agent.summarize.extractive import ExtractiveSummarizer

REAL = Path(__file__).parent / "fixtures" / "real"


def test_a_real_three_way_tie_is_reported_as_a_tie() -> None:
    # OnlineBoutique's cart network delay: checkout and frontend wait longer on their calls,
    # and cart, currency and shipping, callees of both with nothing of their own, score alike.
    snapshot = load_snapshot(next(REAL.glob("oracle-ob-2022-08-22-042703*")))
    analysis = analyze(snapshot.model_copy(update={"ground_truth": None}))
    leaders = [c.service for c in analysis.candidates[:3]]
    assert leaders == ["cartservice", "currencyservice", "shippingservice"]
    assert len({c.score for c in analysis.candidates[:3]}) == 1
    assert analysis.summary.startswith(
        "cartservice, currencyservice and shippingservice are tied as the most likely root "
        "cause (network latency, low confidence"
    )
    assert "(cartservice comes first only in alphabetical order)" in analysis.summary
    assert any(
        note.startswith("the data cannot decide between cartservice, currencyservice and ")
        for note in analysis.notes
    )
    assert analysis.confidence < 1 / 3


def test_a_tie_of_different_faults_names_each_fault_and_considers_the_next_ones() -> None:
    draft = build_analysis()
    first, second, third = draft.candidates
    tied = [first, second.model_copy(update={"score": first.score}), third]
    summary = ExtractiveSummarizer().summarize(draft.model_copy(update={"candidates": tied}))
    assert summary.text.startswith(
        "payments (memory leak) and checkout (network latency) are tied as the most likely "
        "root cause (high confidence 0.83): the data cannot tell them apart"
    )
    assert "Also considered: frontend (unknown, score 0.05)." in summary.text
    assert second.fault_type is FaultType.NETWORK_LATENCY


def test_a_clear_leader_reads_as_before() -> None:
    summary = ExtractiveSummarizer().summarize(build_analysis())
    assert summary.text.startswith("payments is the most likely root cause (memory leak, ")
