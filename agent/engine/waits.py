"""What callers wait on: client-side latency blames the callee, not the caller.

A pod's client-side latency (how long it waits for its dependencies) rises when a dependency
is slow, including when the delay sits on the dependency's network path, where the
dependency's own server-side series barely move. So a rise in client-side latency is
evidence against the callee, not against the pod that waits:

- a per-edge series (``source``/``destination`` labels, as Istio's and Linkerd's request
  metrics have) names the callee it waited on;
- otherwise the call graph's callees of the waiting pod are the suspects, and a callee
  weighs by how many of its measured callers wait: one whose callers *all* wait longer is the
  likeliest, one whose other callers are fine is less likely;
- a callee that waits itself passes the wait on to its own callees, so it is blamed less;
  not for a wait that only began in the last sample, which later data must confirm;
- a callee whose own serving latency rose, no later than the caller began to wait, explains
  that wait by itself: the caller's other callees, which look fine, take only a share of it
  (the "flat callee on a slow network path" reading is for waits nothing else explains).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from agent.engine.callgraph import CallGraph
from agent.engine.detect.kinds import callee_of, side_of
from agent.engine.hypothesis import strength
from agent.engine.service_score import ServiceScore, is_wait
from agent.models import SignalKind

WAIT_WEIGHT = 0.65  # a callers' wait is as good as a latency finding at the callee
PASSING_ON = 0.5  # a callee that waits itself is likelier a victim of its own callees
EXPLAINED = 0.5  # of a wait, what a fine callee takes when a sibling callee got slow itself


@dataclass
class Wait:
    """The waits that point at one callee."""

    strength: float = 0.0
    onset: float = float("inf")
    callers: list[str] = field(default_factory=list)


def _waits_by_caller(
    by_service: Mapping[str, ServiceScore], threshold: float
) -> dict[str, tuple[float, float, dict[str, float]]]:
    """Per waiting caller: its strongest wait, when it began, and per-edge waits by callee."""
    found: dict[str, tuple[float, float, dict[str, float]]] = {}
    for s in by_service.values():
        waits = [f for f in s.metrics if is_wait(f)]
        if not waits:
            continue
        edges: dict[str, float] = {}
        general = [0.0]
        for f in waits:
            w = strength(f.score, threshold) * WAIT_WEIGHT * (0.3 if f.pinned else 1.0)
            callee = callee_of(f.signal)
            if callee is None:
                general.append(w)
            else:
                edges[callee] = max(edges.get(callee, 0.0), w)
        found[s.service] = (max(general), min(f.onset for f in waits), edges)
    return found


def _serves_slowly(s: ServiceScore | None, since: float, threshold: float) -> bool:
    """Whether the service's own serving latency rose clearly, by ``since`` at the latest (a
    rise that began after a caller started to wait cannot be why it waited)."""
    return s is not None and any(
        f.kind is SignalKind.LATENCY
        and f.direction > 0
        and f.score >= threshold
        and not f.pinned
        and side_of(f.signal) != "client"
        and f.onset <= since
        for f in s.metrics
    )


def wait_blame(
    by_service: Mapping[str, ServiceScore],
    graph: CallGraph,
    measured: Collection[str],
    threshold: float,
) -> dict[str, Wait]:
    """Callees blamed by their callers' waits. ``measured`` are the services that have
    client-side series at all: a caller without them says nothing either way."""
    waiting = _waits_by_caller(by_service, threshold)
    passing_on = {  # a wait that began in the last sample may be a glitch: it passes nothing on
        s.service
        for s in by_service.values()
        if any(is_wait(f) and not f.at_data_end for f in s.metrics)
    }
    blamed: dict[str, Wait] = {}

    def add(callee: str, caller: str, w: float, onset: float) -> None:
        wait = blamed.setdefault(callee, Wait())
        wait.strength += w
        wait.onset = min(wait.onset, onset)
        wait.callers.append(caller)

    for caller, (w, onset, edges) in waiting.items():
        for callee, ew in edges.items():
            add(callee, caller, ew, onset)
        if w > 0:
            callees = [c for c in graph.callees.get(caller, ()) if c not in edges]
            slow = {c for c in callees if _serves_slowly(by_service.get(c), onset, threshold)}
            for callee in callees:
                share = EXPLAINED if slow and callee not in slow else 1.0
                passed = PASSING_ON if callee in passing_on else 1.0
                add(callee, caller, w * share * passed, onset)
    for callee, wait in blamed.items():
        callers = [c for c in graph.callers.get(callee, ()) if c in measured] or wait.callers
        agreeing = len(set(wait.callers) & set(callers)) / len(set(callers))
        wait.strength *= agreeing
    return {callee: wait for callee, wait in blamed.items() if wait.strength > 0}
