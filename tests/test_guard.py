"""The grounding guard with a scripted backend: validate, repair once, fall back with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import build_analysis, build_snapshot
from summarize_support import ScriptedBackend, answer

from agent.engine.pipeline import analyze
from agent.models import Analysis, FaultType
from agent.summarize.answer import answer_for
from agent.summarize.guard import AnswerRejected, GuardedSummarizer, check_answer
from agent.summarize.llm import LlmCallError
from agent.summarize.redact import Redactor
from agent.summarize.spec import answer_spec


def guarded(backend: ScriptedBackend) -> GuardedSummarizer:
    return GuardedSummarizer(backend, prompt_tokens=3000, redact=Redactor())


def test_valid_answer_becomes_the_summary() -> None:
    backend = ScriptedBackend(json.dumps(answer()))
    draft = build_analysis()
    summary = guarded(backend).summarize(draft)
    assert summary.fallback is None and summary.backend == "scripted"
    assert summary.root_cause is not None
    assert summary.root_cause.service == "payments"
    assert summary.root_cause.fault_type is FaultType.MEMORY_LEAK
    assert summary.evidence_ids == ["L1", "M1", "M2"]
    # times come from the evidence, in time order, not from the model
    assert [e.evidence_id for e in summary.timeline] == ["M1", "M2"]
    assert summary.timeline[0].time == draft.evidence_by_id("M1").onset  # type: ignore[union-attr]
    assert summary.confidence == pytest.approx(min(0.8, draft.confidence))
    assert summary.tokens == {"prompt": 100, "completion": 20}
    assert summary.cost_usd == pytest.approx(0.001)
    assert [c.valid for c in summary.checks] == [True]
    assert len(backend.calls) == 1


def test_first_and_repair_call_get_the_answer_spec_of_the_draft() -> None:
    backend = ScriptedBackend(json.dumps(answer(evidence_ids=["M42"])), json.dumps(answer()))
    draft = build_analysis()
    summarizer = guarded(backend)
    assert summarizer.summarize(draft).fallback is None
    spec = answer_spec(draft, summarizer.prompt(draft))
    assert spec is not None and backend.specs == [spec, spec]
    assert spec.services == ("payments", "checkout") and "M1" in spec.owned["payments"]


def test_missing_timeline_comes_from_the_evidence() -> None:
    summary = guarded(ScriptedBackend(json.dumps(answer(timeline=[])))).summarize(build_analysis())
    assert summary.fallback is None
    assert [e.evidence_id for e in summary.timeline] == ["M1", "L1", "M2"]


def test_model_cannot_raise_confidence_above_the_engine() -> None:
    draft = build_analysis().model_copy(update={"confidence": 0.3})
    summary = guarded(ScriptedBackend(json.dumps(answer(confidence=0.99)))).summarize(draft)
    assert summary.confidence == pytest.approx(0.3)


def test_rejected_answer_gets_one_repair_call_with_the_error() -> None:
    bad = answer(evidence_ids=["M1", "M42"])
    backend = ScriptedBackend("```json\n" + json.dumps(bad) + "\n```", json.dumps(answer()))
    summary = guarded(backend).summarize(build_analysis())
    assert summary.fallback is None and summary.root_cause is not None
    assert len(backend.calls) == 2
    repair = backend.calls[1]
    assert repair[:2] == backend.calls[0]
    assert repair[2]["role"] == "assistant" and "M42" in repair[2]["content"]
    assert repair[3]["role"] == "user" and "do not exist: M42" in repair[3]["content"]
    assert [c.valid for c in summary.checks] == [False, True]
    assert summary.checks[0].cited_valid < summary.checks[0].cited
    assert summary.tokens == {"prompt": 200, "completion": 40}


def test_two_rejected_answers_fall_back_to_extractive_with_the_reason() -> None:
    backend = ScriptedBackend("I think it is payments.", "{not json}")
    summary = guarded(backend).summarize(build_analysis())
    assert summary.backend == "extractive"
    assert summary.fallback is not None
    assert summary.fallback.startswith("scripted answer rejected after repair:")
    assert "not valid JSON" in summary.fallback
    assert summary.root_cause is not None and summary.root_cause.service == "payments"
    assert summary.tokens == {"prompt": 200, "completion": 40}


def test_failed_call_falls_back_without_repair() -> None:
    backend = ScriptedBackend(LlmCallError("HTTP 500: boom"))
    summary = guarded(backend).summarize(build_analysis())
    assert summary.backend == "extractive"
    assert summary.fallback == "scripted call failed: HTTP 500: boom"
    assert len(backend.calls) == 1
    assert summary.tokens == {}


def test_insufficient_evidence_calls_no_model() -> None:
    backend = ScriptedBackend()
    summary = guarded(backend).summarize(build_analysis(insufficient=True))
    assert backend.calls == []
    assert summary.backend == "extractive" and summary.fallback is None
    assert summary.root_cause is None


def test_remote_backend_without_redaction_is_refused() -> None:
    with pytest.raises(ValueError, match="redaction is required"):
        GuardedSummarizer(ScriptedBackend(), prompt_tokens=3000, redact=None)
    local = GuardedSummarizer(ScriptedBackend(remote=False), prompt_tokens=3000, redact=None)
    assert local.redact is None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (answer(evidence_ids=["M9"]), "do not exist: M9"),
        (
            answer(root_cause={"service": "ledger", "fault_type": "disk_full", "summary": "[M1]"}),
            "'ledger' is not a candidate service",
        ),
        (
            answer(root_cause={"service": "payments", "fault_type": "oom", "summary": "[M1]"}),
            "root_cause.fault_type",
        ),
        (
            answer(root_cause={"service": "payments", "fault_type": "memory_leak", "summary": "x"}),
            "cites no evidence id",
        ),
        (
            answer(
                root_cause={"service": "checkout", "fault_type": "bad_deploy", "summary": "[M1]"},
                evidence_ids=["M1", "L1"],
            ),
            "no cited evidence belongs to the root-cause service 'checkout'",
        ),
        (
            answer(next_steps=["see [runbook](https://evil.example/x)"]),
            "contains a link",
        ),
        (answer(confidence=1.5), "confidence"),
        ({**answer(), "verdict": "x"}, "verdict"),
        (answer(timeline=[{"evidence_id": "L7", "text": "x"}]), "do not exist: L7"),
        (
            answer(
                root_cause={
                    "service": "payments",
                    "fault_type": "memory_leak",
                    "summary": "leak [M1] as shown in [M77]",
                }
            ),
            "do not exist: M77",
        ),
    ],
)
def test_check_answer_rejects(data: dict[str, Any], error: str) -> None:
    with pytest.raises(AnswerRejected, match=error.replace("(", r"\(").replace("[", r"\[")):
        check_answer(json.dumps(data), build_analysis())


def test_check_answer_accepts_a_different_candidate_with_its_own_evidence() -> None:
    data = answer(
        root_cause={
            "service": "checkout",
            "fault_type": "network_latency",
            "summary": "checkout slowed down first [M2].",
        },
        evidence_ids=["M2"],
    )
    parsed = check_answer("Here you go:\n" + json.dumps(data), build_analysis())
    assert parsed.root_cause.service == "checkout"


def test_guard_records_citation_counts_of_unparseable_answers(analysis: Analysis) -> None:
    backend = ScriptedBackend("no json at all", json.dumps(answer(evidence_ids=["M1", "X9"])))
    summary = guarded(backend).summarize(analysis)
    assert summary.fallback is not None and "X9" in summary.fallback
    first = summary.checks[0]
    assert (first.valid, first.cited, first.cited_valid) == (False, 0, 0)
    assert summary.checks[1].cited > summary.checks[1].cited_valid


def test_answer_for_a_finished_analysis_passes_the_guard() -> None:

    finished = analyze(build_snapshot(with_truth=False))
    target = answer_for(finished)
    assert target is not None
    parsed = check_answer(target.model_dump_json(), finished)
    assert parsed.root_cause.service == finished.candidates[0].service
    assert parsed.evidence_ids and "[" in parsed.root_cause.summary
    assert answer_for(build_analysis(insufficient=True)) is None
