"""What a change does to its neighbours: its callers' errors and latency towards it after
its new pods began to serve against before (its callees' traffic: :mod:`agent.engine.losses`),
and the series both read.

A new build can be wrong without failing: it answers with wrong values (its callers fail on
what they got back), or it stops making a call (its callee loses traffic). Its own series
stay clean, so the pod-by-pod comparison of :mod:`agent.engine.canary` clears it; only its
neighbours show it. These are before/after comparisons, so they also see whatever else
happened in those minutes; :mod:`agent.engine.trouble` decides what else explains them.

Where per-edge series exist (a ``destination``-style label, :func:`callee_of`), a caller's
errors and latency towards the changed service are read from them; else its own serving
series are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agent.engine.canary import LEAD_S, MIN_SAMPLES, Comparison
from agent.engine.detect.kinds import callee_of, kind_of, own_series
from agent.engine.hood import TOLERANCE_S
from agent.engine.mannwhitney import is_worse, mann_whitney_greater, stats_of
from agent.models import Change, Signal, SignalKind

Series = tuple[NDArray[np.float64], NDArray[np.float64]]  # timestamps, values
Index = Mapping[str, Sequence[Signal]]  # signals by service
PRE_SAMPLES = 3  # a rise already under way this many samples before the change predates it
ONSET_SHARE = 1 / 3  # a rise began where it first got this far from before to after
CARRY_GAIN = 5.0  # the most a callee's rise is taken to grow on its way to a caller


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
        """The first of two samples in a row a third of the way from the median before to
        the level after (its upper quartile): when the rise (or, negated, the fall) began.
        Not the median after: a rise that held under half the minutes since the change
        (it began late, or passed) leaves that near the level before, and the noise of the
        minutes before the rise would date it."""
        if self.before.size == 0 or self.after.size < 2:
            return None
        base = float(np.median(self.before))
        level = base + ONSET_SHARE * (float(np.percentile(self.after, 75)) - base)
        up = self.after > level
        both = np.flatnonzero(up[:-1] & up[1:])
        return float(self.after_times[both[0]]) if both.size else None


def index_of(signals: Iterable[Signal]) -> Index:
    """The signals by service, looked up once rather than scanned per question."""
    out: dict[str, list[Signal]] = {}
    for s in signals:
        out.setdefault(s.service, []).append(s)
    return out


def aggregate(signals: Sequence[Signal], total: bool) -> Series:
    """One series from several (a service's pods, or its per-edge series): the sum per
    timestamp (``total``, for request rates) or the mean. A timestamp where a series that
    runs through it has no value is left out: a missed scrape is not lost traffic."""
    signals = [s for s in signals if s.timestamps]
    if not signals:
        empty = np.asarray([], dtype=np.float64)
        return empty, empty
    times = np.unique(np.concatenate([np.asarray(s.timestamps, dtype=np.float64) for s in signals]))
    grid = np.full((len(signals), times.size), np.nan)
    spans = np.zeros((len(signals), times.size), dtype=bool)
    for row, s in enumerate(signals):
        stamps = np.asarray(s.timestamps, dtype=np.float64)
        values = np.asarray([np.nan if v is None else v for v in s.values], dtype=np.float64)
        grid[row, np.searchsorted(times, stamps)] = values
        spans[row] = (times >= stamps[0]) & (times <= stamps[-1])
    present = ~np.isnan(grid)
    kept = (present.sum(axis=0) == spans.sum(axis=0)) & present.any(axis=0)
    summed = np.where(present, grid, 0.0).sum(axis=0)
    values = summed if total else summed / np.maximum(present.sum(axis=0), 1)
    return times[kept], values[kept]


def own_serving(index: Index, service: str, kind: SignalKind) -> list[Signal]:
    """The service's own serving series of one kind, first name only: service-level series
    where kept, else its pods' (a mix of names would mix p50 with p99)."""
    own = [s for s in index.get(service, ()) if kind_of(s) is kind and own_series(s)]
    level = [s for s in own if s.pod is None] or own
    first = min((s.name for s in level), default=None)
    return [s for s in level if s.name == first]


def serving(index: Index, service: str, kind: SignalKind) -> Series:
    """The service's own serving series of one kind, averaged over its pods at each time."""
    return aggregate(own_serving(index, service, kind), False)


def towards(index: Index, caller: str, callee: str, kind: SignalKind) -> list[Signal]:
    """The caller's series of ``kind`` towards ``callee`` (per-edge), else its own."""
    edge = [s for s in index.get(caller, ()) if kind_of(s) is kind and callee_of(s) == callee]
    if edge:
        first = min(s.name for s in edge)
        return [s for s in edge if s.name == first]
    return own_serving(index, caller, kind)


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


def neighbour_comparison(s: Shift, versus: str, p: float, onset: float | None) -> Comparison:
    return Comparison(
        s.signal,
        s.kind,
        stats_of(s.after),
        stats_of(s.before),
        versus,
        p,
        True,
        same_minutes=False,
        own=False,
        onset=onset,
    )


@dataclass(frozen=True)
class Rise:
    """A caller's errors or latency towards the changed service, worse after the change."""

    caller: str
    kind: SignalKind
    onset: float | None  # when the rise began
    comparison: Comparison


def caller_rises(
    change: Change, index: Index, callers: Iterable[str], end: float
) -> tuple[list[Rise], int]:
    """Each caller's errors and latency towards the changed service after the change against
    before: the ones worse (and not already rising before it), and how many callers had any
    series to compare."""
    at = change.at.timestamp()
    rises, measured = [], 0
    for caller in sorted(callers):
        found = False
        for kind in (SignalKind.ERRORS, SignalKind.LATENCY):
            s = shift(towards(index, caller, change.service, kind), at, end, LEAD_S, False)
            if s is None or s.after.size < MIN_SAMPLES or s.before.size < MIN_SAMPLES:
                continue
            found = True
            p = mann_whitney_greater(s.after, s.before)
            if is_worse(s.after, s.before, p) and not predates(s):
                versus = f"{caller}'s calls before {change.service} changed"
                shown = neighbour_comparison(s, versus, p, s.onset)
                rises.append(Rise(caller, kind, s.onset, shown))
        measured += found
    return rises, measured


def own_rise(change: Change, index: Index, worse: Sequence[Comparison]) -> float:
    """When the changed service's own worse series with the largest step began to rise (the
    change, if unclear). The largest step, not the earliest rise: latency a little up as a
    new build settles would date a rise minutes before the errors that make it one."""
    at = change.at.timestamp()
    for c in sorted(worse, key=lambda c: -_step_of(c)):
        series = [s for s in index.get(change.service, ()) if s.name == c.signal.name]
        found = shift(series, at, math.inf, LEAD_S, False)
        if found is not None and found.onset is not None:
            return found.onset
    return at


def serving_step(index: Index, service: str, kind: SignalKind, at: float) -> float | None:
    """How far the service's own serving ``kind`` moved from the :data:`LEAD_S` before ``at``
    to after it (difference of means, in the series' units: a crash's spikes count as the
    errors they are); None with no such series."""
    found = shift(own_serving(index, service, kind), at, math.inf, LEAD_S, False)
    if found is None or found.before.size == 0 or found.after.size == 0:
        return None
    return float(np.mean(found.after) - np.mean(found.before))


def carried(
    service: str,
    at: float,
    index: Index,
    callees: Sequence[str],
    kinds: Iterable[SignalKind],
    unsized: Mapping[str, float],
    by: float | None = None,
) -> bool:
    """Whether a direct callee's trouble is big enough to be what ``service`` passes up: on
    one of the serving ``kinds`` the service rose on, a callee rose at least
    1/:data:`CARRY_GAIN` as much (a slow callee's latency makes its callers slow and time
    out, a failing one's errors make them fail; a call edge amplifies by retries or loops,
    not by orders of magnitude). A callee in trouble on what cannot be set against requests
    (``unsized`` since: its CPU, its disk, its pods gone; the calls fail at the caller)
    carries; where the service's rise (``by``) began as its new pods served (within
    :data:`TOLERANCE_S` of ``at``), only if that trouble began by the rise, give or take
    :data:`TOLERANCE_S` (a callee's CPU up a quarter of an hour later did not make a build
    fail the minute it served). A signal either side lacks carries: nothing tells. Errors
    are carried only by a callee's errors, or as timeouts (:func:`_waited`): a callee's
    latency explains a caller's latency, not errors that rose while the caller hardly
    waited longer. Steps are measured from ``at`` (the change) against the :data:`LEAD_S`
    before it."""
    steps = {k: serving_step(index, service, k, at) for k in kinds}
    own = {k: rise for k, rise in steps.items() if rise is not None and rise > 0}
    if not own or not callees or any(rise is None for rise in steps.values()):
        return True
    # A rise that began as the new pods served is dated by them: what began later in a
    # callee did not cause it. One that began later has no such anchor.
    anchored = by is not None and by <= at + TOLERANCE_S
    latest = by + TOLERANCE_S if by is not None and anchored else math.inf
    if any(at - LEAD_S <= unsized.get(c, -math.inf) <= latest for c in callees):
        return True

    def carries(kind: SignalKind, rise: float) -> bool:
        for callee in callees:
            theirs = serving_step(index, callee, kind, at)
            if theirs is None or CARRY_GAIN * theirs >= rise:
                return True
        return False

    errors = own.get(SignalKind.ERRORS)
    if (
        errors is not None
        and not carries(SignalKind.ERRORS, errors)
        and not _waited(index, service, at)
    ):
        return False
    return any(carries(kind, rise) for kind, rise in own.items())


def _waited(index: Index, service: str, at: float) -> bool:
    """Whether the service's own latency rose by at least 1/:data:`CARRY_GAIN` of what it
    was before ``at``: errors a slow callee passes up are the caller's timeouts, and a
    caller that times out waited first. Errors that rose while its latency held, with no
    callee failing anywhere near as much, are the service's own, whatever a callee's
    latency did."""
    found = shift(own_serving(index, service, SignalKind.LATENCY), at, math.inf, LEAD_S, False)
    if found is None or found.before.size == 0 or found.after.size == 0:
        return True
    before = float(np.mean(found.before))
    return float(np.mean(found.after)) >= (1.0 + 1.0 / CARRY_GAIN) * before


def _step_of(c: Comparison) -> float:
    """How many times the reference median the new one is."""
    new, ref = c.new.median or 0.0, c.reference.median or 0.0
    return new / ref if ref > 0 else math.inf if new > 0 else 0.0


# END
