"""Deterministic summary from the ranked evidence: no model, no network, always available."""

from __future__ import annotations

from agent.models import (
    Analysis,
    Change,
    Evidence,
    FaultType,
    RootCause,
    RunbookCitation,
    TimelineEvent,
)
from agent.summarize import Summary

NEXT_STEPS: dict[FaultType, tuple[str, ...]] = {
    FaultType.CPU_SATURATION: (
        "Check CPU usage against limits and throttling for {service}'s pods",
        "Look for a traffic surge, hot loop or noisy neighbour; scale out or raise CPU limits",
    ),
    FaultType.MEMORY_LEAK: (
        "Check {service}'s memory working set and OOMKilled restarts (kubectl describe pod)",
        "Compare heap profiles before and after the onset; roll back if a release introduced it",
    ),
    FaultType.NETWORK_LATENCY: (
        "Check network round-trip times and the node or zone {service} runs in",
        "Compare {service}'s server-side latency with what its callers see",
    ),
    FaultType.PACKET_LOSS: (
        "Check retransmits, drops and interface errors on {service}'s nodes",
        "Look for a CNI, MTU or node network problem; cordon the affected node if isolated",
    ),
    FaultType.CODE_EXCEPTION: (
        "Read the new exception in {service}'s logs and the code path it names",
        "Check recent config or feature-flag changes that reach that path",
    ),
    FaultType.BAD_DEPLOY: (
        "Roll back {service} to the previous version",
        "Diff the new release against the last good one; check its config and migrations",
    ),
    FaultType.DB_POOL_EXHAUSTION: (
        "Check {service}'s connection pool usage, waiters and slow queries on its database",
        "Look for connection leaks or long transactions; raise the pool size only as a stopgap",
    ),
    FaultType.DISK_FULL: (
        "Free space on {service}'s volume (logs, temp files) and check what is growing",
        "Expand the volume or add retention; writes fail until space is back",
    ),
    FaultType.DEPENDENCY_OUTAGE: (
        "Check whether {service} is up: pods, endpoints, health checks, provider status",
        "Fail over or enable the fallback for callers of {service}",
    ),
    FaultType.UNKNOWN: (
        "Open {service}'s dashboards around the onset and compare with the baseline",
    ),
}


def _confidence_word(confidence: float) -> str:
    return "high" if confidence >= 0.7 else "medium" if confidence >= 0.4 else "low"


class ExtractiveSummarizer:
    name = "extractive"

    def summarize(self, draft: Analysis) -> Summary:
        if draft.insufficient_evidence or not draft.candidates:
            return Summary(
                root_cause=None,
                confidence=draft.confidence,
                evidence_ids=[],
                timeline=[],
                next_steps=[
                    "Widen the window or check that the right services' metrics and logs are "
                    "being collected"
                ],
                text="Insufficient evidence: no series or log pattern departs clearly from its "
                "baseline in the incident window.",
            )
        top = draft.candidates[0]
        cited = [e for eid in top.evidence_ids[:4] if (e := draft.evidence_by_id(eid))]
        fault = top.fault_type.value.replace("_", " ")
        level = f"{_confidence_word(draft.confidence)} confidence {draft.confidence:.2f}"
        tied = [c for c in draft.candidates if c.score == top.score]
        if len(tied) > 1:  # listed by name: the first is no likelier than the rest
            one_fault = len({c.fault_type for c in tied}) == 1
            names = [
                c.service if one_fault else f"{c.service} ({c.fault_type.value.replace('_', ' ')})"
                for c in tied
            ]
            listed = ", ".join(names[:-1]) + " and " + names[-1]
            what = f"{fault}, {level}" if one_fault else level
            headline = (
                f"{listed} are tied as the most likely root cause ({what}): the data cannot "
                f"tell them apart ({top.service} comes first only in alphabetical order)."
            )
        else:
            headline = f"{top.service} is the most likely root cause ({fault}, {level})."
        because = "; ".join(f"[{e.id}] {e.description}" for e in cited)
        alternatives = [
            f"{c.service} ({c.fault_type.value}, score {c.score:.2f})"
            for c in draft.candidates[len(tied) : len(tied) + 2]
        ]
        text = headline + (f" Evidence: {because}." if because else "")
        if alternatives:
            text += " Also considered: " + ", ".join(alternatives) + "."
        steps = [s.format(service=top.service) for s in NEXT_STEPS[top.fault_type]]
        suspect = next(
            (
                v.change
                for v in draft.changes
                if v.verdict == "suspect" and v.change.service == top.service
            ),
            None,
        )
        if suspect is not None:
            steps.insert(0, rollback_step(suspect))
        steps[1:1] = [runbook_step(r) for r in draft.runbooks]
        return Summary(
            root_cause=RootCause(service=top.service, fault_type=top.fault_type, summary=headline),
            confidence=draft.confidence,
            evidence_ids=[e.id for e in cited],
            timeline=timeline(draft.evidence),
            next_steps=steps,
            alternatives=alternatives,
            text=text,
        )


def rollback_step(change: Change) -> str:
    """The rollback to consider, as text for a person to run after checking: never run.

    It names the change's namespace when one is known; else it says that the namespace is a
    placeholder to fill in, never a guess that would roll back another environment."""
    version = (
        f" (back from {change.to_version} to {change.from_version})" if change.from_version else ""
    )
    if change.namespace:
        namespace, placeholder = change.namespace, ""
    else:
        namespace = "<namespace>"
        placeholder = "`<namespace>` is a placeholder, the change's namespace is not known; "
    return (
        f"Consider rolling back {change.service}{version}: "
        f"`kubectl rollout undo deployment/{change.service} -n {namespace}` "
        f"(a suggestion, not run; {placeholder}check the rollout history first)"
    )


def runbook_step(runbook: RunbookCitation) -> str:
    """The next step a matching runbook gives: follow its section, cited as ``[R1]``."""
    section = f', section "{runbook.section}"' if runbook.section else ""
    where = f" ({runbook.url})" if runbook.url else f" ({runbook.path})" if runbook.path else ""
    return f"Follow the runbook [{runbook.id}] {runbook.title}{section}{where}"


def timeline(evidence: list[Evidence], limit: int = 8) -> list[TimelineEvent]:
    """First onset per service and evidence, in time order: how the incident unfolded
    (memory's ``P1`` is not part of it: it happened before)."""
    seen: set[tuple[str, str]] = set()
    events: list[TimelineEvent] = []
    observed = [e for e in evidence if e.source != "memory"]
    for e in sorted(observed, key=lambda e: (e.onset or e.start, -e.score)):
        key = (e.service, e.signal_kind.value if e.signal_kind else e.pattern)
        if key in seen:
            continue
        seen.add(key)
        what = e.signal or (e.template or "logs")
        events.append(
            TimelineEvent(
                time=e.onset or e.start,
                service=e.service,
                text=f"{e.service}: {what} {e.pattern}",
                evidence_id=e.id,
            )
        )
    return events[:limit]
