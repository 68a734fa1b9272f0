"""A bounded prior from memory: a confirmed past root cause nudges its candidate, no more.

When a past analysis with a close fingerprint (similarity >= :data:`MIN_SIMILARITY`) has a
root cause a person confirmed (rated correct, or corrected), and that service is one of this
analysis's candidates, the candidate gets one evidence item ``P1`` ("same signature as
analysis X, confirmed root cause Y") and its score grows by :data:`MAX_SHARE` of the
leader's score. So memory breaks a close call between two candidates, and never outweighs
strong current evidence: a candidate further than that share behind the leader stays behind.
When it does change the leader, the confidence is capped as for an undecided ranking, and a
note says so.

Applied to the draft between ranking and summarizing (``analyze(..., enrich=...)``), so the
summary, the next steps and the fingerprint stored afterwards all see it.
"""

from __future__ import annotations

from agent.memory.recall import PastIncident
from agent.models import Analysis, Evidence, Stats

# On the recurring-incidents suite (seeds 11, 23, 37 and 53), the most similar confirmed
# match named the true service 124 times in 139 at similarity 0.3-0.4 and 197 of 200 above;
# 84 of 187 at 0.2-0.3 (docs/benchmarks.md, Incident memory). A match that close counts in
# full: the bound, not the similarity, keeps a wrong one from doing harm.
MIN_SIMILARITY = 0.3
MAX_SHARE = 0.2
FLIPPED_CONFIDENCE = 0.35  # as the engine's cap for a ranking it cannot decide
PRIOR_ID = "P1"


def best_confirmed(past: list[PastIncident]) -> PastIncident | None:
    """The most similar past analysis with a confirmed root cause close enough to count."""
    close = [p for p in past if p.confirmed and p.similarity >= MIN_SIMILARITY]
    return max(close, key=lambda p: (p.similarity, p.created_at), default=None)


def _evidence(draft: Analysis, past: PastIncident, bonus: float) -> Evidence:
    fault = f" ({past.confirmed_fault_type})" if past.confirmed_fault_type else ""
    fixed = f"; fixed by: {past.resolution[:160]}" if past.resolution else ""
    return Evidence(
        id=PRIOR_ID,
        source="memory",
        service=past.confirmed_service or "",
        pattern="seen_before",
        start=draft.window.incident_start,
        end=draft.window.end,
        baseline=Stats(),
        incident=Stats(),
        score=round(bonus, 4),
        description=(
            f"same signature as analysis {past.analysis_id} of {past.created_at:%Y-%m-%d} "
            f"(similarity {past.similarity:.2f}), confirmed root cause "
            f"{past.confirmed_service}{fault}{fixed}"
        ),
    )


def apply_prior(draft: Analysis, past: list[PastIncident]) -> Analysis:
    """The draft with the prior of the closest confirmed past analysis applied (see the
    module docstring); unchanged when none applies."""
    best = best_confirmed(past)
    if best is None or not draft.candidates or draft.insufficient_evidence:
        return draft
    target = next((c for c in draft.candidates if c.service == best.confirmed_service), None)
    if target is None:
        return draft
    leader = draft.candidates[0]
    bonus = MAX_SHARE * max(leader.score, 0.0)
    evidence = _evidence(draft, best, bonus)
    reason = f"seen before: {evidence.description} [{PRIOR_ID}]"
    candidates = [
        c.model_copy(
            update={
                "score": round(c.score + bonus, 4),
                "evidence_ids": [*c.evidence_ids, PRIOR_ID],
                "reasons": [*c.reasons, reason],
            }
        )
        if c is target
        else c
        for c in draft.candidates
    ]
    candidates.sort(key=lambda c: -c.score)  # stable: ties keep the engine's order
    update: dict[str, object] = {
        "candidates": candidates,
        "evidence": [*draft.evidence, evidence],
    }
    if candidates[0].service != leader.service:
        update["confidence"] = min(draft.confidence, FLIPPED_CONFIDENCE)
        update["notes"] = [
            *draft.notes,
            f"{target.service} was ranked just behind {leader.service}; a confirmed past "
            f"incident with the same signature ({best.analysis_id}) moved it ahead [{PRIOR_ID}]",
        ]
    return draft.model_copy(update=update)
