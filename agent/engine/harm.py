"""Whether a service's own findings hurt anyone: the test that separates a cause from a
harmless deviation.

A saturated resource or a deploy that hurts callers hurts the service itself first (its
latency or errors move, or it crashes), or, for a noisy neighbour, a service on the same node.
A deviation that hurt nobody while it lasted is probably a batch job's CPU burst or an
uneventful rollout. Logs that go quiet are judged the same way: an outage only if the
service's metrics agree that it stopped working.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from agent.engine.detect.kinds import CAUSE_KINDS
from agent.engine.service_score import ServiceScore, crashed, own_failure
from agent.models import SignalKind

HARM_LAG_S = 120.0  # a saturated resource or a change hurts its own service while it lasts


def causes_until(s: ServiceScore) -> float:
    """When the service's own cause findings (a resource or saturation up, a change) last
    deviated: a latency or error blip that begins :data:`HARM_LAG_S` after that is not their
    harm (infinite when there is no such finding)."""
    ends = [
        f.until if f.until is not None else f.end
        for f in s.metrics
        if f.kind in CAUSE_KINDS and (f.direction > 0 or f.kind is SignalKind.CHANGE)
    ]
    return max(ends) if ends else math.inf


def _hurt(s: ServiceScore, until: float) -> bool:
    """Whether the service itself suffered while its cause findings lasted: its latency or
    errors rose, it crashed or stopped, or its logs say it fails."""
    return any(
        (f.kind in (SignalKind.LATENCY, SignalKind.ERRORS) and f.onset <= until + HARM_LAG_S)
        or f.direction == 0
        or crashed(f)
        for f in s.metrics
    ) or any(own_failure(f) for f in s.logs)


def _hurts_neighbours(s: ServiceScore, neighbours: list[ServiceScore], until: float) -> bool:
    """Whether a service on the same node got slower or failed while this one's resource
    deviated: a noisy neighbour's harm shows there, not on itself."""
    since = min(
        (f.onset for f in s.metrics if f.kind in CAUSE_KINDS and f.direction > 0), default=until
    )
    return any(
        f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
        and f.direction > 0
        and since - HARM_LAG_S <= f.onset <= until + HARM_LAG_S
        for n in neighbours
        for f in n.metrics
    )


def apply_own_symptoms(
    by_service: dict[str, ServiceScore],
    measured: frozenset[str],
    colocated: Mapping[str, frozenset[str]],
) -> None:
    """A saturated resource or a deploy that hurts callers hurts the service itself first: its
    own latency or errors move, or it crashes. When its latency and errors are measured and
    stayed normal, the finding is probably harmless (a batch job's CPU burst, an uneventful
    rollout), unless a service on the same node suffered meanwhile (a noisy neighbour).
    Deploys are judged more gently: a bad pod can hide in the service average."""
    for s in by_service.values():
        # Callers waiting on it are its symptom: a delay on its network path leaves its own
        # serving latency flat; a suspect change's harm may show only at its neighbours.
        if s.service not in measured or s.waited_by or s.changed_worse or s.dropped_calls:
            continue
        until = causes_until(s)
        if _hurt(s, until):
            continue
        mates = [by_service[n] for n in colocated.get(s.service, ()) if n in by_service]
        if _hurts_neighbours(s, mates, until):
            s.reasons.append("a service on the same node got slower while it deviated")
            continue
        deploy = any(f.kind is SignalKind.CHANGE for f in s.metrics)
        s.score *= 0.75 if deploy else 0.35
        s.reasons.append("its own latency and errors stayed normal")


def doubt_quiet_logs(
    by_service: dict[str, ServiceScore],
    coverage: Mapping[str, frozenset[SignalKind]],
    threshold: float,
) -> None:
    """Logs that went quiet mean the service went down only if its metrics agree: a service
    whose resource or traffic series go on reporting, none of them falling, is still at
    work, and its logs paused because the requests that write them paused (a batch, a
    user's workflow). Its silence then counts as barely anomalous."""
    for s in by_service.values():
        if not any(f.pattern == "vanished" for f in s.logs):
            continue
        if not coverage.get(s.service, frozenset()) & {SignalKind.RESOURCE, SignalKind.TRAFFIC}:
            continue
        if any(
            f.direction == 0
            or (f.direction < 0 and f.kind in (SignalKind.RESOURCE, SignalKind.TRAFFIC))
            for f in s.metrics
        ):
            continue
        s.logs = [replace(f, score=threshold) if f.pattern == "vanished" else f for f in s.logs]
        s.reasons.append("its logs went quiet, but its metrics show it still at work")
