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
- a callee that waits itself passes the wait on to its own callees, so it is blamed less.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from agent.engine.callgraph import CallGraph
from agent.engine.detect.kinds import callee_of
from agent.engine.hypothesis import strength
from agent.engine.service_score import ServiceScore, is_wait

WAIT_WEIGHT = 0.65  # a callers' wait is as good as a latency finding at the callee
PASSING_ON = 0.5  # a callee that waits itself is likelier a victim of its own callees


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


def wait_blame(
    by_service: Mapping[str, ServiceScore],
    graph: CallGraph,
    measured: Collection[str],
    threshold: float,
) -> dict[str, Wait]:
    """Callees blamed by their callers' waits. ``measured`` are the services that have
    client-side series at all: a caller without them says nothing either way."""
    waiting = _waits_by_caller(by_service, threshold)
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
            for callee in graph.callees.get(caller, ()):
                if callee not in edges:
                    add(callee, caller, w * (PASSING_ON if callee in waiting else 1.0), onset)
    for callee, wait in blamed.items():
        callers = [c for c in graph.callers.get(callee, ()) if c in measured] or wait.callers
        agreeing = len(set(wait.callers) & set(callers)) / len(set(callers))
        wait.strength *= agreeing
    return {callee: wait for callee, wait in blamed.items() if wait.strength > 0}
