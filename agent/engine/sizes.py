"""How big a rise is, so a small one is not taken to cause a far larger one.

A call edge passes trouble on, and amplifies it by retries or loops, not by orders of
magnitude (:data:`agent.engine.neighbours.CARRY_GAIN`): a build whose own errors went from
0.5% to 1.5% does not make its callers fail 90% of their requests, nor make another build's
pods fail 75%. The ranking asks it of a suspect build's own worse serving series, where the
canary comparison gives both sides' numbers; a build that fails only at its callers (wrong
values, a dropped call) or whose pods die has no such number, and nothing is ruled out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from agent.engine.canary import RESTARTS, Comparison
from agent.engine.neighbours import CARRY_GAIN
from agent.engine.service_score import ServiceScore, symptoms
from agent.models import SignalKind

SERVING = frozenset({SignalKind.ERRORS, SignalKind.LATENCY})


def own_steps(worse: Iterable[Comparison], crashing: bool = False) -> dict[SignalKind, float]:
    """Per serving kind, the largest step (new median less reference median) of a build's own
    worse series: how much it passes on, so none where its pods restart (a crash's failed
    calls are not in its medians) unless ``crashing`` (how much it rose, at least)."""
    worse = list(worse)
    if not crashing and any(c.label == RESTARTS for c in worse):
        return {}
    steps: dict[SignalKind, float] = {}
    for c in worse:
        if c.own and c.kind in SERVING:
            step = (c.new.median or 0.0) - (c.reference.median or 0.0)
            steps[c.kind] = max(step, steps.get(c.kind, 0.0))
    return steps


def note_steps(s: ServiceScore, worse: Sequence[Comparison]) -> dict[SignalKind, float]:
    """Record a suspect build's own steps on its service (what it passes on, and how far it
    rose, crashes and all); return what it passes on."""
    steps = own_steps(worse)
    for kind, step in steps.items():
        s.changed_steps[kind] = max(step, s.changed_steps.get(kind, step))
    for kind, step in own_steps(worse, crashing=True).items():
        s.changed_rises[kind] = max(step, s.changed_rises.get(kind, step))
    return steps


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
    if kind in s.changed_rises:
        rises.append(s.changed_rises[kind])
    return max(rises, default=None)


def shows_enough(
    d: ServiceScore, s: ServiceScore, kind: SignalKind, cutoff: float | None, since: float | None
) -> bool:
    """Whether dependency ``d`` shows ``kind`` big enough to be what ``s`` rose by: one that
    shows it only by its suspect build's own step (no finding of its own between ``since``
    and ``cutoff``) does not explain a caller's rise many times that step."""
    step = d.changed_steps.get(kind)
    if step is None or kind in symptoms(replace(d, changed_worse=frozenset()), cutoff, since):
        return True
    rise = rise_of(s, kind)
    return rise is None or CARRY_GAIN * step >= rise


def too_small(steps: Mapping[SignalKind, float], caller: ServiceScore) -> bool:
    """Whether a build's own steps are too small to be what ``caller`` rose by, on every
    serving kind the caller rose on that the build stepped up on (and there is one)."""
    told = False
    for kind in symptoms(caller) & SERVING:
        step = steps.get(kind)
        if step is None:
            continue
        rise = rise_of(caller, kind)
        if rise is None or CARRY_GAIN * step >= rise:
            return False
        told = True
    return told


def passed_to(
    steps: Mapping[SignalKind, float],
    callers: Iterable[str],
    by_service: Mapping[str, ServiceScore],
) -> list[ServiceScore]:
    """The failing ``callers`` whose rise a build with these own ``steps`` can have made."""
    return [
        c for name in callers if (c := by_service.get(name)) is not None and not too_small(steps, c)
    ]
