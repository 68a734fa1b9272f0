"""What a change does to its callees' traffic: requests a new build no longer sends.

A build that stops making a call keeps its own series clean; only the callee shows it, by
losing requests. A before/after comparison of the callee's request rate also sees whatever
else happened in those minutes, so a loss counts against the change only where the callee
lost clearly more than the changed service's own traffic fell (else the requests were lost
further up, or the day's traffic ebbed), and no other caller of the callee lost enough of
its own requests to be where the callee's went.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from agent.engine.canary import LEAD_S, MIN_SAMPLES, Comparison
from agent.engine.mannwhitney import ALPHA, mann_whitney_greater
from agent.engine.neighbours import (
    Index,
    Series,
    Shift,
    aggregate,
    neighbour_comparison,
    own_serving,
    predates,
    shift,
)
from agent.models import Change, SignalKind

LOST_RATIO = 0.85  # a callee's traffic at most this share of before: requests went missing
HELD_RATIO = 0.92  # ... while the callee's other callers kept this share of the changed one's
OWN_FLOOR = 0.8  # ... and the changed service kept this share of its own (or of the ebb)
PASSED_LOSS = 0.5  # of the callee's lost share that another caller's own loss must reach


def lost_traffic(
    before: NDArray[np.float64], after: NDArray[np.float64], trend: float = 1.0
) -> bool:
    """The median request rate after is clearly below before, beyond ``trend`` (the share
    of its requests the changed service itself kept: traffic ebbs over a day for all)."""
    if before.size == 0 or after.size == 0:
        return False
    return float(np.median(after)) <= LOST_RATIO * min(trend, 1.0) * float(np.median(before))


def kept_share(s: Shift | None) -> float:
    """The median request rate after against before (unknown: 1, nothing lost)."""
    if s is None or s.before.size == 0 or s.after.size == 0:
        return 1.0
    before = float(np.median(s.before))
    return float(np.median(s.after)) / before if before > 0 else 1.0


def _lost_through(other: Shift | None, trend: float, lost: float) -> bool:
    """Whether another caller of the callee lost its own requests (kept less than
    :data:`HELD_RATIO` of what the changed service kept), and enough of them to be where
    the callee's ``lost`` share went: at least :data:`PASSED_LOSS` of it. A caller passes
    on at most the share of its own requests it lost (a little more where it fans out to
    several calls); one whose traffic dipped a tenth did not take half of its callee's."""
    kept = kept_share(other)
    return kept < HELD_RATIO * min(trend, 1.0) and 1.0 - kept >= PASSED_LOSS * lost


def _starved(trend: float, ebb: float) -> bool:
    """Whether the changed service lost so much of its own traffic (kept ``trend`` of it)
    that its callee's loss may have come from further up: below :data:`OWN_FLOOR` of what
    the callee's other callers kept (``ebb``, 1 at most: the day's traffic ebbs for all
    alike over a long window, and a service that kept as much as its peers was not
    starved; with no other caller, of all of it)."""
    return trend < OWN_FLOOR * min(ebb, 1.0)


def callee_losses(
    change: Change,
    index: Index,
    callees: Mapping[str, Sequence[str]],
    end: float,
    sole: frozenset[str] = frozenset(),
) -> list[Comparison]:
    """Callees (with their other callers, ``callees``) whose request rate fell after the
    change clearly more than the changed service's own did (which kept most of its, or as
    much as the callee's other callers: :func:`_starved`), while no other caller lost
    enough of its own requests to be where they went (:func:`_lost_through`): the new
    build no longer makes the calls. Callees of which the changed service is the only
    caller that changed (``sole``) are compared from when their requests began to fall,
    which a code path that traffic reaches late puts minutes after the rollout; with
    another changed caller, a late fall's minutes do not say which build dropped the call."""
    at = change.at.timestamp()
    trend = kept_share(_traffic(index, change.service, at, end))
    out = []
    for callee, others in sorted(callees.items()):
        theirs = [_traffic(index, o, at, end) for o in others]
        if _starved(trend, max((kept_share(t) for t in theirs), default=1.0)):
            continue
        s = _traffic(index, callee, at, end)
        if s is None or s.after.size < MIN_SAMPLES or s.before.size < MIN_SAMPLES:
            continue
        fell = _falling(s).onset
        if callee in sole:
            s = _since(s, fell)
            if s.after.size < MIN_SAMPLES:
                continue
        p = mann_whitney_greater(s.before, s.after)
        if p >= ALPHA or not lost_traffic(s.before, s.after, trend) or _fell_before(s):
            continue
        lost = 1.0 - kept_share(s)
        if not any(_lost_through(t, trend, lost) for t in theirs):
            versus = f"{callee}'s requests before {change.service} changed"
            out.append(neighbour_comparison(s, versus, p, fell))
    return out


def _since(s: Shift, fell: float | None) -> Shift:
    """The shift from when the fall began: a call that a code path reached late drops
    minutes after the rollout, and the minutes before it are not the build's."""
    if fell is None:
        return s
    later = s.after_times >= fell
    return Shift(s.signal, s.kind, s.after[later], s.before, s.after_times[later])


def requests(index: Index, service: str) -> Series:
    """The service's own request rate, summed over its pods where only they report it."""
    return aggregate(own_serving(index, service, SignalKind.TRAFFIC), True)


def lighter_since(index: Index, service: str, at: float, since: float, end: float) -> bool:
    """Whether the service's own serving latency from ``since`` to ``end`` was below the
    :data:`LEAD_S` before ``at`` (its change; one-sided rank test): a build that no longer
    makes a call no longer waits on it, so it answers faster from when the call went."""
    times, values = aggregate(own_serving(index, service, SignalKind.LATENCY), False)
    before = values[(times >= at - LEAD_S) & (times < at)]
    after = values[(times >= since) & (times <= end)]
    if before.size < MIN_SAMPLES or after.size < MIN_SAMPLES:
        return False
    faster = float(np.median(after)) < float(np.median(before))
    return faster and mann_whitney_greater(before, after) < ALPHA


def _traffic(index: Index, service: str, at: float, end: float) -> Shift | None:
    return shift(own_serving(index, service, SignalKind.TRAFFIC), at, end, LEAD_S, True)


def loss_onset(index: Index, service: str, at: float, end: float) -> float | None:
    """When the service's request rate began to fall after ``at`` (a third of the way down
    from before to after), if it did."""
    s = _traffic(index, service, at, end)
    return None if s is None else _falling(s).onset


def _falling(s: Shift) -> Shift:
    """The shift upside down: a fall read as a rise."""
    return Shift(s.signal, s.kind, -s.after, -s.before, s.after_times)


def _fell_before(s: Shift) -> bool:
    """A drop already under way before the change (mirror of :func:`predates`)."""
    return predates(_falling(s))
