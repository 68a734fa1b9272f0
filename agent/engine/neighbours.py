"""What a change does to its neighbours: its callers' errors and latency towards it, and its
callees' traffic, after its new pods began to serve against before.

A new build can be wrong without failing: it answers with wrong values (its callers fail on
what they got back), or it stops making a call (its callee loses traffic). Its own series
stay clean, so the pod-by-pod comparison of :mod:`agent.engine.canary` clears it; only its
neighbours show it. These comparisons are before/after, so they also see whatever else
happened in those minutes (the incident itself, when its cause is elsewhere); they count only
when nothing else explains them:

- a caller's rise must begin after the new pods began to serve, none of the caller's other
  dependencies may be in trouble themselves, and most of the changed service's callers must
  rise (one caller failing alone is its own fault);
- a callee's lost traffic counts only while the changed service's own traffic held (else the
  requests were lost further up).

Where per-edge series exist (a ``destination``-style label, :func:`callee_of`), a caller's
errors and latency towards the changed service are read from them; else its own serving
series are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from agent.engine.canary import (
    ALPHA,
    LEAD_S,
    MIN_SAMPLES,
    Comparison,
    Judgement,
    is_worse,
    mann_whitney_greater,
    stats_of,
)
from agent.engine.detect.kinds import callee_of, kind_of, side_of
from agent.engine.detect.series import SeriesFinding
from agent.models import Change, Signal, SignalKind, Topology

Series = tuple[NDArray[np.float64], NDArray[np.float64]]  # timestamps, values
PRE_SAMPLES = 3  # a rise already under way this many samples before the change predates it
LOST_RATIO = 0.85  # a callee's traffic at most this share of before: requests went missing
HELD_RATIO = 0.92  # ... while the changed service's own traffic kept at least this share
TOLERANCE_S = 180.0  # onsets at 1-minute scrapes are good to a few samples


@dataclass(frozen=True)
class Neighbourhood:
    """Who calls whom (topology plus per-edge series), and which services were in trouble of
    their own in the window, with when it began (what else could explain a neighbour)."""

    callers: Mapping[str, Sequence[str]]
    callees: Mapping[str, Sequence[str]]
    troubled: Mapping[str, float]
    changed: Mapping[str, float] = field(default_factory=dict)  # service -> its latest change


@dataclass(frozen=True)
class Shift:
    """One neighbour's series after the change against before it."""

    signal: Signal  # a series the shift was measured on, for the evidence
    kind: SignalKind
    after: NDArray[np.float64]
    before: NDArray[np.float64]
    after_times: NDArray[np.float64]

    @property
    def onset(self) -> float | None:
        """The first of two samples in a row past halfway from the median before to the
        median after: when the rise (or, negated, the fall) began."""
        if self.before.size == 0 or self.after.size < 2:
            return None
        half = (float(np.median(self.before)) + float(np.median(self.after))) / 2
        up = self.after > half
        both = np.flatnonzero(up[:-1] & up[1:])
        return float(self.after_times[both[0]]) if both.size else None


def aggregate(signals: Sequence[Signal], total: bool) -> Series:
    """One series from several (a service's pods, or its per-edge series): the sum per
    timestamp (``total``, for request rates) or the mean. A timestamp where a series that
    runs through it has no value is left out: a missed scrape is not lost traffic."""
    spans = [(s.timestamps[0], s.timestamps[-1]) for s in signals if s.timestamps]
    values: dict[float, list[float]] = {}
    for s in signals:
        for t, v in zip(s.timestamps, s.values, strict=True):
            if v is not None and not math.isnan(v):
                values.setdefault(t, []).append(v)
    times = sorted(values)
    kept = [t for t in times if len(values[t]) == sum(a <= t <= b for a, b in spans)]
    out = [sum(values[t]) if total else sum(values[t]) / len(values[t]) for t in kept]
    return np.asarray(kept, dtype=np.float64), np.asarray(out, dtype=np.float64)


def _serving(signals: Sequence[Signal], service: str, kind: SignalKind) -> list[Signal]:
    """The service's own serving series of one kind, first name only: service-level series
    where kept, else its pods' (a mix of names would mix p50 with p99)."""
    own = [
        s
        for s in signals
        if s.service == service
        and kind_of(s) is kind
        and side_of(s) != "client"
        and callee_of(s) is None
    ]
    level = [s for s in own if s.pod is None] or own
    first = min((s.name for s in level), default=None)
    return [s for s in level if s.name == first]


def towards(signals: Sequence[Signal], caller: str, callee: str, kind: SignalKind) -> list[Signal]:
    """The caller's series of ``kind`` towards ``callee`` (per-edge), else its own."""
    edge = [
        s for s in signals if s.service == caller and kind_of(s) is kind and callee_of(s) == callee
    ]
    if edge:
        first = min(s.name for s in edge)
        return [s for s in edge if s.name == first]
    return _serving(signals, caller, kind)


def shift(
    series: Sequence[Signal], at: float, end: float, lead: float, total: bool
) -> Shift | None:
    """The aggregated series after ``at`` against the ``lead`` seconds before it."""
    if not series:
        return None
    times, values = aggregate(series, total)
    later = (times >= at) & (times <= end)
    before = values[(times >= at - lead) & (times < at)]
    return Shift(series[0], kind_of(series[0]), values[later], before, times[later])


def predates(s: Shift) -> bool:
    """Whether the series was already most of the way up in the samples just before the
    change: a rise that began before the new pods served is not theirs."""
    if s.before.size <= PRE_SAMPLES or s.after.size == 0:
        return False
    base = float(np.median(s.before[:-PRE_SAMPLES]))
    pre = float(np.median(s.before[-PRE_SAMPLES:]))
    return pre - base >= 0.5 * (float(np.median(s.after)) - base) > 0


def explained(
    hood: Neighbourhood, caller: str, changed: str, since: float, by: float | None
) -> str | None:
    """Another dependency of ``caller`` (not one that calls the changed service) in trouble
    of its own from ``since`` and no later than the caller's rise began (``by``, give or
    take :data:`TOLERANCE_S`): the caller's rise is that one's."""
    callers = set(hood.callers.get(changed, ()))
    for other in hood.callees.get(caller, ()):
        if other == changed or other in callers:
            continue
        if _troubled_between(hood, other, since, by):
            return other
    return None


def _troubled_between(hood: Neighbourhood, service: str, since: float, by: float | None) -> bool:
    began = hood.troubled.get(service)
    if began is None or began < since:
        return False
    return by is None or began <= by + TOLERANCE_S


def lost_traffic(before: NDArray[np.float64], after: NDArray[np.float64]) -> bool:
    """The median request rate after is clearly below before."""
    if before.size == 0 or after.size == 0:
        return False
    return float(np.median(after)) <= LOST_RATIO * float(np.median(before))


def held_traffic(s: Shift | None) -> bool:
    """The changed service still got its requests (unknown: assume it did not lose them)."""
    if s is None or s.before.size == 0 or s.after.size == 0:
        return True
    return float(np.median(s.after)) >= HELD_RATIO * float(np.median(s.before))


def _caller_shifts(
    change: Change, signals: Sequence[Signal], hood: Neighbourhood, end: float
) -> tuple[list[Comparison], int, list[str]]:
    """Each caller's errors and latency towards the changed service after the change against
    before: the worse ones nothing else explains, how many callers were measured, and the
    reasons for the ones set aside."""
    at = change.at.timestamp()
    worse, measured, notes = [], 0, []
    for caller in sorted(hood.callers.get(change.service, ())):
        found = False
        for kind in (SignalKind.ERRORS, SignalKind.LATENCY):
            s = shift(towards(signals, caller, change.service, kind), at, end, LEAD_S, False)
            if s is None or s.after.size < MIN_SAMPLES or s.before.size < MIN_SAMPLES:
                continue
            found = True
            p = mann_whitney_greater(s.after, s.before)
            if not is_worse(s.after, s.before, p) or predates(s):
                continue
            other = explained(hood, caller, change.service, at - LEAD_S, s.onset)
            other = other or _dependency_in_trouble(change, hood, s.onset)
            if other is not None:
                notes.append(f"{caller}'s {kind.value} rose, as did {other}'s")
                continue
            latest = _latest_change(hood, caller, s.onset)
            if latest not in (None, change.service):
                notes.append(f"{caller}'s {kind.value} rose after {latest} changed, later")
                continue
            versus = f"{caller}'s calls before {change.service} changed"
            worse.append(_comparison(s, versus, p))
        measured += found
    return worse, measured, notes


def _comparison(s: Shift, versus: str, p: float) -> Comparison:
    return Comparison(
        s.signal,
        s.kind,
        stats_of(s.after),
        stats_of(s.before),
        versus,
        p,
        True,
        same_minutes=False,
    )


def _callee_losses(
    change: Change, signals: Sequence[Signal], hood: Neighbourhood, end: float
) -> list[Comparison]:
    """Callees whose request rate fell after the change while the changed service's own held:
    the new build no longer makes the calls."""
    at = change.at.timestamp()
    own = shift(_serving(signals, change.service, SignalKind.TRAFFIC), at, end, LEAD_S, True)
    if not held_traffic(own):
        return []
    out = []
    for callee in sorted(hood.callees.get(change.service, ())):
        s = shift(_serving(signals, callee, SignalKind.TRAFFIC), at, end, LEAD_S, True)
        if s is None or s.after.size < MIN_SAMPLES or s.before.size < MIN_SAMPLES:
            continue
        p = mann_whitney_greater(s.before, s.after)
        if p < ALPHA and lost_traffic(s.before, s.after) and not _fell_before(s):
            versus = f"{callee}'s requests before {change.service} changed"
            out.append(_comparison(s, versus, p))
    return out


def _fell_before(s: Shift) -> bool:
    """A drop already under way before the change (mirror of :func:`predates`)."""
    flipped = Shift(s.signal, s.kind, -s.after, -s.before, s.after_times)
    return predates(flipped)


def _downstream(hood: Neighbourhood, service: str) -> list[str]:
    """Everything ``service`` depends on, directly or not, nearest first."""
    seen, order, frontier = {service}, [], [service]
    while frontier:
        nxt = [c for s in frontier for c in sorted(hood.callees.get(s, ())) if c not in seen]
        for c in nxt:
            if c not in seen:
                seen.add(c)
                order.append(c)
        frontier = nxt
    return order


def _own_rise(change: Change, signals: Sequence[Signal], worse: Sequence[Comparison]) -> float:
    """When the changed service's own worse series began to rise (the change, if unclear)."""
    at, end = change.at.timestamp(), math.inf
    onsets = []
    for c in worse:
        series = [s for s in signals if s.service == change.service and s.name == c.signal.name]
        found = shift(series, at, end, LEAD_S, False)
        if found is not None and found.onset is not None:
            onsets.append(found.onset)
    return min(onsets, default=at)


def _dependency_in_trouble(change: Change, hood: Neighbourhood, by: float | None) -> str | None:
    """A dependency of the changed service (or theirs) in trouble of its own from shortly
    before the change and no later than ``by``: what the service, or its callers, show after
    the change is that, passed up."""
    since = change.at.timestamp() - LEAD_S
    for callee in _downstream(hood, change.service):
        if _troubled_between(hood, callee, since, by):
            return callee
    return None


def _latest_change(hood: Neighbourhood, caller: str, by: float | None) -> str | None:
    """The caller's dependency that changed last before its rise (``by``): when several
    changed, the rise follows the latest one that preceded it."""
    limit = math.inf if by is None else by + TOLERANCE_S
    changed = [
        (at, callee)
        for callee in hood.callees.get(caller, ())
        if (at := hood.changed.get(callee)) is not None and at <= limit
    ]
    return max(changed)[1] if changed else None


def reconsider(
    judged: Sequence[Judgement], signals: Sequence[Signal], hood: Neighbourhood, end: float
) -> list[Judgement]:
    """The verdicts with the neighbours in view. First each change's own evidence: a
    before/after worsening that a troubled dependency explains clears it; the suspects left
    join the troubled. Then a change its own series clear is suspect when its callers fail
    towards it, or its callees lose their requests, from its rollout."""
    own = [_own_control(j, signals, hood) for j in judged]
    troubled = dict(hood.troubled)
    for j in own:
        if j.verdict == "suspect":
            service, at = j.change.service, j.change.at.timestamp()
            troubled[service] = min(troubled.get(service, math.inf), at)
    changed = {j.change.service: j.change.at.timestamp() for j in judged}
    hood = replace(hood, troubled=troubled, changed=changed)
    return [
        j if j.verdict == "suspect" else _neighbour_evidence(j, signals, hood, end) for j in own
    ]


def _own_control(judgement: Judgement, signals: Sequence[Signal], hood: Neighbourhood) -> Judgement:
    """A change worse only before/after, no later than a dependency in trouble of its own,
    is cleared: the service passes that dependency's trouble up."""
    worse = [c for c in judgement.comparisons if c.worse]
    if not worse or any(c.same_minutes for c in worse):
        return judgement
    change = judgement.change
    other = _dependency_in_trouble(change, hood, _own_rise(change, signals, worse))
    if other is None:
        return judgement
    kinds = ", ".join(sorted({c.kind.value for c in worse}))
    why = (
        f"{_label(change)}: worse on {kinds} after the change only as its dependency {other} "
        "is, which is in trouble of its own: cleared"
    )
    return replace(judgement, verdict="cleared", reasons=[why])


def _neighbour_evidence(
    judgement: Judgement, signals: Sequence[Signal], hood: Neighbourhood, end: float
) -> Judgement:
    """Suspect when most callers fail more towards the change since it, with nothing else
    to explain it, or a callee lost requests the changed service still gets."""
    change, label = judgement.change, _label(judgement.change)
    callers, measured, notes = _caller_shifts(change, signals, hood, end)
    failing = sorted({c.signal.service for c in callers})
    losses = _callee_losses(change, signals, hood, end)
    reasons: list[str] = []
    if failing and 2 * len(failing) > measured:
        reasons.append(
            f"{label}: its callers {', '.join(failing)} fail more towards it since its new "
            "pods served, and none of their other dependencies is in trouble"
        )
    else:
        callers = []
    for c in losses:
        reasons.append(
            f"{label}: its callee {c.signal.service} lost requests since its new pods served "
            f"({c.new.median:.3g} vs {c.reference.median:.3g}) while its own traffic held"
        )
    if not reasons:
        return replace(judgement, reasons=judgement.reasons + notes)
    return replace(
        judgement,
        verdict="suspect",
        comparisons=judgement.comparisons + callers + losses,
        reasons=reasons,
    )


def _label(change: Change) -> str:
    return f"{change.service} {change.to_version or 'new version'}"


def neighbourhood(
    topology: Topology | None,
    observed: Iterable[tuple[str, str]],
    findings: Sequence[SeriesFinding],
    judged: Sequence[Judgement],
) -> Neighbourhood:
    """Callers and callees from the topology and the per-edge series, and the services in
    trouble of their own: serving errors or latency that rose (the detector's findings), or
    new pods worse than old ones over the same minutes."""
    edges = {(e.caller, e.callee) for e in topology.edges} if topology else set()
    edges |= set(observed)
    callers: dict[str, list[str]] = {}
    callees: dict[str, list[str]] = {}
    for caller, callee in sorted(edges):
        callers.setdefault(callee, []).append(caller)
        callees.setdefault(caller, []).append(callee)
    troubled: dict[str, float] = {}
    for f in findings:
        serving = (
            f.kind in (SignalKind.ERRORS, SignalKind.LATENCY) and side_of(f.signal) != "client"
        )
        if serving and f.direction > 0 and not f.pinned and callee_of(f.signal) is None:
            troubled[f.service] = min(troubled.get(f.service, math.inf), f.onset)
    for j in judged:
        if j.verdict == "suspect" and any(c.worse and c.same_minutes for c in j.comparisons):
            at = j.change.at.timestamp()
            troubled[j.change.service] = min(troubled.get(j.change.service, math.inf), at)
    return Neighbourhood(callers, callees, troubled)
