"""Incident memory, pure parts: the fingerprint, similarity and its reasons, the index, the
bounded prior. No database here (see test_memory_service.py)."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import pytest
from conftest import END, build_analysis, build_snapshot

from agent.engine.pipeline import analyze
from agent.memory.enrich import enricher
from agent.memory.fingerprint import (
    Fingerprint,
    fingerprint_of,
    mask_template,
    similarity,
    stable_labels,
)
from agent.memory.index import MemoryIndex
from agent.memory.prior import MAX_SHARE, MIN_SIMILARITY, PRIOR_ID, apply_prior
from agent.memory.recall import PastIncident, confirmed_cause
from agent.models import Analysis, FaultType
from agent.summarize.redact import Redactor

LABELS = {
    "alertname": "CheckoutLatencyHigh",
    "service": "checkout",
    "severity": "page",
    "pod": "checkout-7d9f8b6c4-x2k9p",
    "instance": "10.0.3.7:8080",
    "build": "a1b2c3",
}


def _fingerprint(analysis: Analysis | None = None) -> Fingerprint:
    return fingerprint_of(
        analysis or build_analysis(), build_snapshot().topology, LABELS, Redactor()
    )


def _renamed(analysis: Analysis, names: dict[str, str]) -> Analysis:
    """The same incident in a system whose services are called something else."""
    data = analysis.model_dump_json()
    for old, new in names.items():
        data = data.replace(old, new)
    return Analysis.model_validate_json(data)


def test_fingerprint_holds_cause_roles_templates_alert_and_stable_labels() -> None:
    fp = _fingerprint()
    assert (fp.root_service, fp.fault_type) == ("payments", "memory_leak")
    assert fp.candidates[0] == "payments|memory_leak"
    assert fp.alert_name == "CheckoutLatencyHigh"
    # volatile labels (pod, instance) and values holding ids (build) are left out
    assert fp.labels == {"service": "checkout", "severity": "page"}
    # roles are of the root cause's own evidence; every finding is an observed signal,
    # whoever it was cited for, weighted by its strength
    assert set(fp.roles) == {"root|resource|up", "root|log|new"}
    assert {"payments|resource|up", "payments|log|new", "checkout|latency|up"} == set(fp.signals)
    assert all(0 < w <= 1 for w in fp.signals.values())
    # the leading hypotheses with their score over the leader's
    assert fp.candidate_weights[0] == 1.0
    assert fp.candidate_weights == sorted(fp.candidate_weights, reverse=True)
    assert set(fp.templates) == {
        "java.lang.OutOfMemoryError: Java heap space (allocating <*> bytes)"
    }


def test_fingerprint_is_deterministic() -> None:
    assert _fingerprint().model_dump_json() == _fingerprint().model_dump_json()


def test_templates_are_masked_and_redacted() -> None:
    masked = mask_template(
        "login failed for ann@example.com password=hunter2 after 3021 ms on 10.0.0.7",
        Redactor(),
    )
    assert "ann@example.com" not in masked and "hunter2" not in masked
    assert "3021" not in masked and "10.0.0.7" not in masked
    assert masked.startswith("login failed for [REDACTED:email]")


def test_stable_labels_drop_replica_and_id_labels() -> None:
    assert stable_labels({"pod": "x-1", "job": "api", "trace": "9f8e7d", "team": "core"}) == {
        "job": "api",
        "team": "core",
    }


def test_similarity_is_one_for_the_same_incident_and_says_why() -> None:
    found = similarity(_fingerprint(), _fingerprint())
    assert found.score == 1.0
    assert "same alert CheckoutLatencyHigh" in found.reasons
    assert "same service and fault type (payments, memory_leak)" in found.reasons
    assert any(
        r.startswith('shared log template "java.lang.OutOfMemoryError') for r in found.reasons
    )


def test_a_different_cause_scores_lower_than_the_same_cause_with_other_noise() -> None:
    base = build_analysis()
    noisy = base.model_copy(update={"evidence": base.evidence[:2]})  # checkout's symptom gone
    other = base.model_copy(
        update={
            "candidates": [base.candidates[1], base.candidates[0]],
            "root_cause": base.root_cause.model_copy(  # type: ignore[union-attr]
                update={"service": "checkout", "fault_type": FaultType.NETWORK_LATENCY}
            ),
        }
    )
    same_cause = similarity(_fingerprint(), _fingerprint(noisy)).score
    other_cause = similarity(_fingerprint(), _fingerprint(other)).score
    assert 0 < other_cause < same_cause < 1


def _swapped(analysis: Analysis, runner_up_share: float) -> Analysis:
    """The same incident misread: the runner-up leads by a hair and the true cause, behind
    it at ``runner_up_share`` of its score, is no longer the root cause."""
    first, second = analysis.candidates[0], analysis.candidates[1]
    lead = second.model_copy(update={"score": first.score})
    behind = first.model_copy(update={"score": first.score * runner_up_share})
    return analysis.model_copy(
        update={
            "candidates": [lead, behind, *analysis.candidates[2:]],
            "root_cause": analysis.root_cause.model_copy(  # type: ignore[union-attr]
                update={"service": second.service, "fault_type": second.fault_type}
            ),
        }
    )


def test_a_misread_recurrence_is_closer_when_its_true_cause_was_a_close_call() -> None:
    """The fingerprint carries the leading hypotheses weighted by score, not only the
    conclusion: a recurrence the engine misread by a hair still matches its twin better
    than one where the true cause was far behind."""
    base = _fingerprint()
    close = similarity(base, _fingerprint(_swapped(build_analysis(), 0.95))).score
    far = similarity(base, _fingerprint(_swapped(build_analysis(), 0.2))).score
    assert 0 < far < close < 1


def test_observed_signals_do_not_depend_on_who_was_blamed() -> None:
    """Every metric and log finding is part of the fingerprint, whichever candidate cites it."""
    base = build_analysis()
    misread = _swapped(base, 0.5)
    assert _fingerprint(misread).signals == _fingerprint(base).signals
    assert _fingerprint(misread).templates == _fingerprint(base).templates


def test_a_version_1_fingerprint_still_compares() -> None:
    """Fingerprints stored before candidate weights fall back to fixed rank weights."""
    old = _fingerprint().model_copy(update={"candidate_weights": [], "version": 1})
    assert similarity(old, old).score == 1.0
    assert 0.5 < similarity(old, _fingerprint()).score < 1


def test_a_corrected_fingerprint_matches_a_twin_read_right_by_its_cause() -> None:
    """Once a person names the real cause of a misread incident, its fingerprint leads with
    that cause instead of the wrong leader: the next incident with that cause, read right,
    matches it better than it matched what the engine had said."""
    twin = _fingerprint()  # payments (memory_leak), read right
    misread = _fingerprint(_swapped(build_analysis(), 0.5))  # checkout led, payments behind
    corrected = misread.confirmed_as("payments", "memory_leak")
    assert corrected.confirmed == "payments|memory_leak"
    features = corrected.features()
    assert features["cand:payments|memory_leak"] == 4.0 and features["svc:payments"] == 2.0
    assert not any(token.startswith(("cand:checkout", "svc:checkout")) for token in features)
    assert features["cand:frontend|unknown"] == misread.features()["cand:frontend|unknown"]
    before, after = similarity(twin, misread), similarity(twin, corrected)
    assert before.score < after.score < 1
    assert "payments (memory_leak) was among its leading candidates" in before.reasons
    assert (
        "confirmed root cause payments (memory_leak), the same as this one's leader"
        in after.reasons
    )


def test_confirming_the_leader_leaves_the_features_as_they_were() -> None:
    fp = _fingerprint()
    confirmed = fp.confirmed_as("payments", "memory_leak")
    assert confirmed.features() == fp.features()
    assert similarity(fp, confirmed).score == 1.0
    assert fp.confirmed_as(None, None).confirmed is None  # a rating that confirms nothing


def test_a_service_named_without_a_fault_counts_as_the_service_alone() -> None:
    features = _fingerprint().confirmed_as("checkout", None).features()
    assert features["svc:checkout"] == 2.0
    assert "cand:checkout|" not in features and "fault:" not in features
    assert "svc:payments" not in features  # the leader it said was wrong


def test_the_confirmed_cause_stays_out_of_the_stored_json() -> None:
    """The store keeps it in a column beside the JSON: a replica of the earlier release,
    whose fingerprint refuses unknown fields, still reads what this one stores."""
    corrected = _fingerprint().confirmed_as("checkout", "memory_leak")
    stored = json.loads(corrected.model_dump_json())
    assert "confirmed" not in stored
    loaded = Fingerprint.model_validate_json(json.dumps(stored))
    assert loaded.confirmed is None and loaded.features() == _fingerprint().features()


def test_similarity_does_not_depend_on_what_the_services_are_called() -> None:
    """Nothing is keyed on one system's names: renaming every service the same way in both
    analyses leaves the similarity as it was."""
    names = {"payments": "ledger", "checkout": "basket", "frontend": "web"}
    base, other = build_analysis(), build_analysis()
    other = other.model_copy(update={"evidence": other.evidence[:2]})
    topology = build_snapshot().topology
    renamed_topology = type(topology).model_validate_json(
        _renamed_json(topology.model_dump_json(), names)
    )

    def fp(a: Analysis, t: object) -> Fingerprint:
        return fingerprint_of(a, t, {"severity": "page"})  # type: ignore[arg-type]

    before = similarity(fp(base, topology), fp(other, topology)).score
    after = similarity(
        fp(_renamed(base, names), renamed_topology), fp(_renamed(other, names), renamed_topology)
    ).score
    assert before == after and 0 < before < 1


def _renamed_json(text: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        text = text.replace(old, new)
    return text


def _random_fingerprint(rng: random.Random) -> Fingerprint:
    services = [f"svc{i}" for i in range(12)]
    faults = [f.value for f in FaultType]
    root = rng.choice(services)
    return Fingerprint(
        root_service=root,
        fault_type=rng.choice(faults),
        candidates=[f"{s}|{rng.choice(faults)}" for s in rng.sample(services, 3)],
        alert_name=rng.choice(["A", "B", "C", None]),
        labels={"severity": rng.choice(["page", "warning"])},
        roles={f"{rng.choice(['root', 'caller'])}|latency|up": rng.choice([1.0, 0.5])},
        signals={f"{s}|errors|up": rng.choice([1.0, 0.35]) for s in rng.sample(services, 3)},
        templates={f"timeout calling {s}": 1.0 for s in rng.sample(services, 2)},
    )


def test_index_ranks_as_pairwise_similarity_does() -> None:
    rng = random.Random(7)
    stored = [_random_fingerprint(rng) for _ in range(300)]
    index = MemoryIndex()
    for n, fp in enumerate(stored):
        index.add(f"an-{n}", float(n), fp)
    query = _random_fingerprint(rng)
    hits = index.similar(query, 10)
    expected = sorted(
        ((similarity(query, fp).score, n) for n, fp in enumerate(stored)),
        key=lambda pair: (-pair[0], -pair[1]),
    )[:10]
    assert [h.similarity for h in hits] == pytest.approx([s for s, _ in expected], abs=1e-4)
    assert hits[0].analysis_id == f"an-{expected[0][1]}"


def test_index_leaves_out_removed_excluded_and_old_rows() -> None:
    index = MemoryIndex()
    fp = _fingerprint()
    for n in range(3):
        index.add(f"an-{n}", float(n), fp)
    assert index.remove("an-1") and not index.remove("an-1")
    assert [h.analysis_id for h in index.similar(fp, 5)] == ["an-2", "an-0"]  # newer first
    assert [h.analysis_id for h in index.similar(fp, 5, exclude="an-2")] == ["an-0"]
    assert [h.analysis_id for h in index.similar(fp, 5, not_before=1.5)] == ["an-2"]
    index.add("an-0", 9.0, fp)  # re-adding replaces
    assert len(index) == 2


# --- the prior ------------------------------------------------------------------------------


def _close_call(runner_up: float) -> Analysis:
    base = build_analysis()
    first, second = base.candidates[0], base.candidates[1]
    return base.model_copy(
        update={
            "candidates": [
                first.model_copy(update={"score": 1.0}),
                second.model_copy(update={"score": runner_up}),
                base.candidates[2],
            ]
        }
    )


def _past(service: str | None, similarity: float = 0.9, verdict: str = "wrong") -> PastIncident:
    confirmed, fault = confirmed_cause(
        "payments", "memory_leak", verdict, service, "network_latency"
    )
    return PastIncident(
        analysis_id="an-past",
        created_at=END - timedelta(days=30),
        similarity=similarity,
        verdict=verdict,
        root_service="payments",
        fault_type="memory_leak",
        confirmed_service=confirmed,
        confirmed_fault_type=fault,
        resolution="raised the pool size",
    )


def test_a_confirmed_past_cause_breaks_a_close_call() -> None:
    draft = _close_call(0.9)
    after = apply_prior(draft, [_past("checkout")])
    assert [c.service for c in after.candidates[:2]] == ["checkout", "payments"]
    leader = after.candidates[0]
    assert leader.evidence_ids[-1] == PRIOR_ID and leader.score <= 0.9 + MAX_SHARE * 1.0
    p1 = after.evidence_by_id(PRIOR_ID)
    assert p1 is not None and p1.source == "memory" and p1.service == "checkout"
    assert "an-past" in p1.description and "raised the pool size" in p1.description
    assert after.confidence <= 0.35 and any("an-past" in n for n in after.notes)


def test_a_match_at_the_floor_counts_in_full() -> None:
    # How close a match is decides whether it counts, not how much: the bound alone limits it.
    # (Scaled by a similarity of 0.3, the bonus would be 6% of the leader: not enough.)
    draft = _close_call(1.0 - 0.75 * MAX_SHARE)
    after = apply_prior(draft, [_past("checkout", similarity=MIN_SIMILARITY)])
    assert after.candidates[0].service == "checkout"
    assert after.candidates[0].score == pytest.approx(1.0 + 0.25 * MAX_SHARE)


def test_the_prior_never_outweighs_strong_current_evidence() -> None:
    draft = _close_call(1.0 - MAX_SHARE - 0.05)
    after = apply_prior(draft, [_past("checkout", similarity=1.0)])
    assert after.candidates[0].service == "payments"
    assert after.evidence_by_id(PRIOR_ID) is not None  # said, but not decisive
    assert after.confidence == draft.confidence


@pytest.mark.parametrize(
    "past",
    [
        _past("checkout", verdict="unrated"),  # nobody confirmed anything
        _past("checkout", similarity=MIN_SIMILARITY - 0.01),  # not close enough
        _past("inventory"),  # the confirmed service is not a candidate now
    ],
)
def test_no_prior_without_a_close_confirmed_candidate(past: PastIncident) -> None:
    draft = _close_call(0.95)
    assert apply_prior(draft, [past]) == draft


def test_the_prior_reaches_the_summary_through_analyze() -> None:
    """The engine's hook: the prior is applied before the summary, so the report cites P1."""
    snapshot = build_snapshot(with_truth=False)
    plain = analyze(snapshot)
    service = plain.candidates[1].service
    seen: list[Fingerprint] = []

    def recall(fp: Fingerprint, k: int, exclude: str | None) -> list[PastIncident]:
        seen.append(fp)
        return [
            PastIncident(
                analysis_id="an-past",
                created_at=END,
                similarity=0.95,
                verdict="wrong",
                confirmed_service=service,
            )
        ]

    enriched = analyze(snapshot, enrich=enricher(recall=recall, runbooks=None))
    assert seen and seen[0].root_service == plain.candidates[0].service
    owner = next(c for c in enriched.candidates if c.service == service)
    assert PRIOR_ID in owner.evidence_ids
    assert all(e.evidence_id != PRIOR_ID for e in enriched.timeline)


def test_confirmed_cause() -> None:
    assert confirmed_cause("a", "cpu_saturation", "correct", None, None) == ("a", "cpu_saturation")
    assert confirmed_cause("a", "cpu_saturation", "wrong", "b", None) == ("b", None)
    assert confirmed_cause("a", "cpu_saturation", "wrong", None, None) == (None, None)
    assert confirmed_cause("a", "cpu_saturation", None, "b", "disk_full") == (None, None)


def test_index_answers_while_another_thread_adds() -> None:
    """The workers add fingerprints while the API queries: no query may hold a view of an
    array that ``add`` grows (an exported buffer cannot be resized)."""
    index = MemoryIndex()
    rng = random.Random(3)
    prints = [_random_fingerprint(rng) for _ in range(50)]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(3000):
                index.add(f"an-{n}", float(n), prints[n % 50])
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    answered = 0
    while thread.is_alive():
        answered += len(index.similar(prints[0], 3))
    thread.join()
    assert errors == [] and answered > 0
    assert len(index) == 3000
