"""Answers to questions in an incident thread, built only from the stored analysis."""

from __future__ import annotations

from agent.models import Analysis
from agent.slack.answers import answer_question


def test_an_evidence_id_is_explained_with_its_numbers(analysis: Analysis) -> None:
    text = answer_question(analysis, "what is m1?")
    assert "*[M1]* payments/payments-7d9f-x2 · memory_rss_bytes" in text
    assert "300 MiB → incident peak 940 MiB" in text and "onset 10:42:00 UTC" in text


def test_a_named_service_gets_its_rank_and_evidence(analysis: Analysis) -> None:
    text = answer_question(analysis, "is checkout to blame?")
    assert "`checkout` ranks #2 of 3 (network_latency, score 0.42), on M2." in text


def test_topics_next_steps_and_confidence(analysis: Analysis) -> None:
    text = answer_question(analysis, "what should we do next, and how sure are you?")
    assert "1. Check heap usage of payments-7d9f-x2" in text
    assert "Confidence 0.83, high. The runner-up is `checkout`." in text


def test_anything_else_gets_the_summary_and_a_hint(analysis: Analysis) -> None:
    text = answer_question(analysis, "hmm")
    assert text.startswith("Root cause: `payments` (memory_leak), confidence 0.83, high.")
    assert "Ask about an evidence id" in text
