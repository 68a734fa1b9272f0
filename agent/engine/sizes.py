"""How big a build's own rise is, where two builds compete for one trouble.

A call edge passes trouble on, and amplifies it by retries or loops, not by orders of
magnitude (:data:`agent.engine.neighbours.CARRY_GAIN`). A build's own errors a percent up do
not bound what it does to its callers (a build that answers wrong keeps its own series
clean and fails them all the same), but where another suspect build the caller calls rose
enough to carry the caller's rise, the small one is not what the caller suffers: it takes
none of the caller's trouble. Nor does a dependency whose only sign is such a small step
explain a build whose own pods got worse many times as much: that build's trouble is its
own. The numbers are the canary comparison's (new median less the reference median) of
the builds' own worse serving series; a build whose pods restart carries anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from agent.engine.canary import RESTARTS, Comparison, Judgement
from agent.engine.neighbours import CARRY_GAIN
from agent.engine.service_score import ServiceScore, symptoms
from agent.models import SignalKind

SERVING = frozenset({SignalKind.ERRORS, SignalKind.LATENCY})
Steps = Mapping[SignalKind, float]


def own_steps(worse: Iterable[Comparison]) -> dict[SignalKind, float]:
    """Per serving kind, the largest step (new median less reference median) of a build's own
    worse series; unbounded where its pods restart (a crash's failed calls are not in its
    medians)."""
    worse = list(worse)
    if any(c.label == RESTARTS and c.own for c in worse):
        return dict.fromkeys(SERVING, math.inf)
    steps: dict[SignalKind, float] = {}
    for c in worse:
        if c.own and c.kind in SERVING:
            step = (c.new.median or 0.0) - (c.reference.median or 0.0)
            steps[c.kind] = max(step, steps.get(c.kind, 0.0))
    return steps


def note_steps(by_service: dict[str, ServiceScore], judged: Sequence[Judgement]) -> None:
    """Record every suspect build's own steps on its service, before any takes a share."""
    for j in judged:
        if j.verdict != "suspect":
            continue
        steps = own_steps(c for c in j.comparisons if c.worse)
        if steps:
            s = by_service.setdefault(j.change.service, ServiceScore(j.change.service))
            for kind, step in steps.items():
                s.changed_steps[kind] = max(step, s.changed_steps.get(kind, step))


def rise_of(s: ServiceScore, kind: SignalKind) -> float | None:
    """How far the service's ``kind`` rose: its findings' level over their baseline, or its
    own build's step; None where nothing says."""
    rises = [
        f.level - f.baseline.median
        for f in s.metrics
        if f.kind is kind
        and f.direction > 0
        and f.level is not None
        and f.baseline.median is not None
    ]
    if kind in s.changed_steps:
        rises.append(s.changed_steps[kind])
    return max(rises, default=None)


def _carries(steps: Steps, caller: ServiceScore, kinds: Iterable[SignalKind]) -> bool | None:
    """Whether a build's own ``steps`` are big enough to be what ``caller`` rose by on one of
    ``kinds``; None where it has a step on none of them."""
    told = None
    for kind in kinds:
        step = steps.get(kind)
        if step is None:
            continue
        rise = rise_of(caller, kind)
        if rise is None or CARRY_GAIN * step >= rise:
            return True
        told = False
    return told


def passed_to(
    service: str,
    callers: Iterable[str],
    by_service: Mapping[str, ServiceScore],
    callees: Mapping[str, Sequence[str]],
) -> list[ServiceScore]:
    """The failing ``callers`` whose rise ``service``'s suspect build can have made: all but
    those its own steps are too small for where another suspect callee's are big enough."""
    own = by_service[service].changed_steps if service in by_service else {}
    out = []
    for name in callers:
        if (c := by_service.get(name)) is None:
            continue
        kinds = symptoms(c) & SERVING
        rivals = (
            by_service[o].changed_steps
            for o in callees.get(name, ())
            if o != service and o in by_service
        )
        if _carries(own, c, kinds) is False and any(_carries(r, c, kinds) for r in rivals):
            continue
        out.append(c)
    return out


def shows_enough(
    d: ServiceScore, s: ServiceScore, kind: SignalKind, cutoff: float | None, since: float | None
) -> bool:
    """Whether dependency ``d`` shows ``kind`` big enough to explain ``s``: where ``s``'s own
    build got worse on it, not by ``d``'s build's own step alone (no finding of its own
    between ``since`` and ``cutoff``) if ``s``'s step was many times that."""
    step, theirs = d.changed_steps.get(kind), s.changed_steps.get(kind)
    if step is None or theirs is None:
        return True
    if kind in symptoms(replace(d, changed_worse=frozenset()), cutoff, since):
        return True
    return CARRY_GAIN * step >= theirs
