"""Which changed callee takes a caller's rise, and which changed caller a callee's lost
requests, where several of them changed in the same minutes.

With no per-edge series, a caller's own errors say that something it calls answers badly,
not which of its callees: when two of them rolled out in the same minutes, the caller's
rise is claimed by both (:mod:`agent.engine.trouble`); so is a shared callee's loss. An
SRE looks at when the trouble began and how it grew: a rollout whose new pods took requests
only after it began did not start it, and a build that answers wrong (or no longer calls)
fails its callers (or starves its callee) in step with its new pods taking over the
requests, so the trouble follows that rollout's progress, not another's. And where a
changed caller's own errors rose in the same minutes as another caller's of a changed callee
they share, that callee's wrong answers are the common cause, not the caller's rollout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.engine.canary import LEAD_S, MIN_SAMPLES, Comparison, Judgement
from agent.engine.detect.kinds import kind_of
from agent.engine.hood import Neighbourhood
from agent.engine.losses import callee_losses, lighter_since, loss_onset, requests
from agent.engine.neighbours import (
    Index,
    Rise,
    Series,
    aggregate,
    own_rise,
    serving,
    towards,
)
from agent.models import SignalKind

ONSET_SLACK_S = 60.0  # a change this much after a rise began may still have caused it
FIT_MARGIN_S = 600.0  # the rollouts' progress is set against the rise this long either side
FIT_TIE = 0.05  # ... and fits this close to the best one's are a tie,
FIT_MISFIT = 2.0  # ... unless one leaves this many times as much of the trouble unexplained
FOLLOWED = 0.9  # a series this close to a rollout's progress (r) followed it
TOGETHER_S = 180.0  # two rises this close began together (onsets good to a few samples)
SERVING_KINDS = frozenset({SignalKind.ERRORS, SignalKind.LATENCY, SignalKind.TRAFFIC})


@dataclass(frozen=True)
class Rises:
    """A change's callers' rises that nothing else explains, out of the callers measured."""

    rises: list[Rise]
    measured: int
    notes: list[str]
    relayed: Mapping[str, str] = field(default_factory=dict)  # caller -> the caller it echoes

    @property
    def share(self) -> float:
        return len({r.caller for r in self.rises}) / self.measured if self.measured else 0.0


def owners_of(
    rises: Mapping[int, Rises],
    judged: Mapping[int, Judgement],
    troubled: Mapping[tuple[str, SignalKind], float],
    index: Index,
) -> dict[str, str]:
    """Each rising caller's changed dependency that takes its rise. One whose new pods served
    by the time the rise began (give or take :data:`ONSET_SLACK_S`) comes first; among
    several still rolling out then, the one whose progress the rise followed most closely;
    then the one whose callers rose most widely, then the most of them, then the one that
    changed last before it."""
    claims: dict[str, list[tuple[int, Rise, bool]]] = {}
    for key, found in rises.items():
        for r in found.rises:
            before = _served(judged[key]) <= rise_began(r, troubled) + ONSET_SLACK_S
            claims.setdefault(r.caller, []).append((key, r, before))
    taken = {}
    for caller, claimed in claims.items():
        began = min(rise_began(r, troubled) for _, r, _ in claimed)
        measured = [
            (key, aggregate(towards(index, caller, judged[key].change.service, r.kind), False))
            for key, r, before in claimed
            if before
        ]
        fits = _fits(measured, judged, index, began)
        ranks = []
        for key, _, before in claimed:
            found, change = rises[key], judged[key].change
            at = change.at.timestamp()
            fit = fits.get(key, 0.0) if before else 0.0
            ranks.append(
                (before, fit, found.share, len(found.rises), at if before else -at, change.service)
            )
        taken[caller] = max(ranks)[5]
    return taken


def answered_wrong(
    service: str, began: float, callees: Sequence[str], hood: Neighbourhood, index: Index
) -> str | None:
    """A changed callee of ``service`` that answers wrong, where the service's errors
    ``began`` to rise with no dependency in trouble of its own: another caller of that callee,
    one that does not depend on ``service``, whose own errors began to rise within
    :data:`TOGETHER_S` of it (:func:`_errors_began`). Two services failing in the same
    minutes share a cause both depend on; a build that answers wrong keeps its own series
    clean, so the callee they share that changed is it, not the service's own rollout."""
    for callee in callees:
        if callee == service or hood.changed.get(callee, math.inf) > began:
            continue
        for other in hood.callers.get(callee, ()):
            if other == service or service in hood.downstream(other):
                continue
            if abs(_errors_began(other, hood, index) - began) <= TOGETHER_S:
                return callee
    return None


def _errors_began(service: str, hood: Neighbourhood, index: Index) -> float:
    """When the service's own errors began to rise: for a changed service worse on them
    since its change, from its series (a suspect's trouble counts from its change for its
    callers, but two rolled-out callers of one callee fail together when their errors rose
    together, however long after their rollouts); else from the detector's findings."""
    rolled = hood.rolled.get(service)
    worse = (
        [c for c in rolled.comparisons if c.worse and c.kind is SignalKind.ERRORS] if rolled else []
    )
    if rolled is not None and worse:
        return own_rise(rolled.change, index, worse)
    return hood.troubled.get((service, SignalKind.ERRORS), math.inf)


def followed_callee(
    judgement: Judgement, began: float, hood: Neighbourhood, index: Index
) -> str | None:
    """A changed callee of the judged service whose rollout its errors followed: the
    service's own rollout was done by the time its errors ``began`` to rise (at the latest
    in that sample), a callee's was still under way then, and the errors followed that
    callee's new pods taking over more closely than its own (:func:`_tied` with neither:
    not a tie). A build that throws fails from its new pods' first requests; a caller whose
    own new pods served requests before its errors rose, every one of them by the time they
    did, and whose errors then climbed pod by pod with a callee's rollout, fails on what
    that callee's new build answers."""
    service = judgement.change.service
    rolled = {service: judgement} | {
        c: hood.rolled[c]
        for c in hood.callees.get(service, ())
        if c in hood.rolled and c != service
    }
    shares = {s: new_share(index, s, j.new_pods) for s, j in rolled.items()}
    if _done(shares[service]) > began:
        return None
    ramping = [
        c
        for c in rolled
        if c != service
        and _served(rolled[c]) <= began + ONSET_SLACK_S
        and _done(shares[c]) >= began
    ]
    if not ramping:
        return None
    errors = serving(index, service, SignalKind.ERRORS)
    start = min(j.change.at.timestamp() for j in rolled.values()) - FIT_MARGIN_S
    span = (start, max(_done(shares[c]) for c in ramping) + FIT_MARGIN_S)
    own = follows(errors, shares[service], span)
    fits = {c: follows(errors, shares[c], span) for c in ramping}
    best = max(fits, key=lambda c: (fits[c], c))
    if fits[best] < FOLLOWED or fits[best] <= own or _tied(own, fits[best]):
        return None
    return best


def loss_taker(
    claimants: Sequence[int],
    judged: Mapping[int, Judgement],
    index: Index,
    callee: str,
    began: float,
    end: float,
) -> int | None:
    """Of several changed callers that claim one callee's lost requests, the one that takes
    them: among those whose new pods served by the time the loss ``began``, the one whose
    progress the loss followed most closely (a build that no longer calls sends fewer
    requests as its new pods take over), then one that answers faster since the loss began
    than before its change (:func:`lighter_since`: it no longer waits on that call), then
    the one that changed last; None if none served by then (the others' rollouts came and
    went with the requests intact)."""
    before = [k for k in claimants if _served(judged[k]) <= began + ONSET_SLACK_S]
    times, values = requests(index, callee)
    fits = _fits([(k, (times, -values)) for k in before], judged, index, began)
    ranks = []
    for k in before:
        change = judged[k].change
        at = change.at.timestamp()
        lighter = lighter_since(index, change.service, at, began, end)
        ranks.append((fits.get(k, 0.0), lighter, at, change.service, k))
    return max(ranks)[4] if ranks else None


AHEAD_LEVEL = 0.75  # of a caller's full rise in errors, reached before a build took half
AHEAD_SHARE = 0.5  # ... of its requests (the share of its serving pods that are new)


def ahead_of_rollout(rise: Rise, judgement: Judgement, index: Index) -> bool:
    """Whether a caller's errors were at (most of, :data:`AHEAD_LEVEL`) their full rise
    before the changed callee's new pods first served, and stayed there in at least two
    samples while those pods were at most half of its serving pods (:data:`AHEAD_SHARE`).
    A rise may begin a sample before a new pod's first one (:data:`ONSET_SLACK_S`: a rate
    needs two scrapes), but a build that answers wrong fails the caller's requests as its
    new pods take them over, a half of them while half its pods are new: errors at their
    full level ahead of that, no higher once every request reached the new pods (their
    level over :data:`FIT_MARGIN_S` from then), are the caller's own. A rollout done within
    a minute of its first new pod's first sample leaves nothing to tell. Errors only: a
    latency quantile reaches its full level on a small share of slow requests."""
    served = _served(judgement)
    if rise.kind is not SignalKind.ERRORS or rise.onset is None or rise.onset >= served:
        return False
    callee = judgement.change.service
    times, values = aggregate(towards(index, rise.caller, callee, rise.kind), False)
    share_t, share_v = new_share(index, callee, judgement.new_pods)
    done = _done((share_t, share_v))
    if not math.isfinite(done):
        return False
    at = judgement.change.at.timestamp()
    share = np.interp(times, share_t, share_v, left=0.0, right=float(share_v[-1]))
    before = values[(times >= at - LEAD_S) & (times < at)]
    early = values[(times >= rise.onset) & (times < served)]
    half = values[(times >= served) & (times < done) & (share <= AHEAD_SHARE)]
    full = values[(times >= done) & (times <= done + FIT_MARGIN_S)]
    if before.size < MIN_SAMPLES or early.size == 0 or half.size < 2 or full.size < MIN_SAMPLES:
        return False
    base = float(np.median(before))
    rise_full = float(np.median(full)) - base
    level = AHEAD_LEVEL * rise_full + base
    return rise_full > 0 and float(np.min(early)) >= level and float(np.median(half)) >= level


def _served(judgement: Judgement) -> float:
    """When the change's new pods first served (the change itself, where not seen)."""
    at = judgement.change.at.timestamp()
    return max(at, judgement.served or at)


def _fits(
    measured: Sequence[tuple[int, Series]],
    judged: Mapping[int, Judgement],
    index: Index,
    began: float,
) -> dict[int, float]:
    """Where several rollouts still under way when a neighbour's trouble ``began`` claim it
    (``measured``: the neighbour's series as each claimant measured it), how closely the
    trouble followed each one's new pods taking over (:func:`_tied` with the best: a tie), over
    the minutes from the first of them to ten after the last one's new pods all served; a
    rollout done before the trouble began ranks below them (-1). Done up to
    :data:`ONSET_SLACK_S` before counts as under way, its progress set that much later: a
    neighbour feels a build a hop's lag behind (a rate over the last minute), so a build
    that took every request a sample before its callers began to fail (or its callee to
    lose calls) is as good a fit as one that took them as they did."""
    shares = {
        key: new_share(index, judged[key].change.service, judged[key].new_pods)
        for key, _ in measured
    }
    done = {key: _done(share) for key, share in shares.items()}
    ramping = [(key, series) for key, series in measured if done[key] >= began - ONSET_SLACK_S]
    if len({key for key, _ in ramping}) < 2:
        return {}
    start = min(judged[key].change.at.timestamp() for key, _ in ramping) - FIT_MARGIN_S
    span = (start, max(done[key] for key, _ in ramping) + FIT_MARGIN_S)
    fits = dict.fromkeys(shares, -math.inf)
    for key, series in ramping:
        lag = max(0.0, began - done[key])
        fits[key] = max(fits[key], follows(series, shares[key], span, lag))
    best = max(fits.values())
    return {key: 0.0 if _tied(fit, best) else fit - best for key, fit in fits.items()}


def _tied(fit: float, best: float) -> bool:
    """Whether a rollout's fit to the trouble is as good as the best one's: within
    :data:`FIT_TIE` of it, and leaving at most :data:`FIT_MISFIT` times as much unexplained
    (1 - r). Near a perfect fit a few hundredths of r are most of what is left: a rise that
    reached its full level in the minute one build was fully out followed that build, not
    one that got there a minute later (r 0.999 against 0.976)."""
    return fit >= best - FIT_TIE and 1.0 - fit <= FIT_MISFIT * (1.0 - best)


def _done(share: Series) -> float:
    """When every serving pod ran the new version (inf: not within the data)."""
    times, values = share
    full = times[values >= 1.0]
    return float(full[0]) if full.size else math.inf


def rise_began(rise: Rise, troubled: Mapping[tuple[str, SignalKind], float]) -> float:
    """When a caller's rise began: measured from one change on, it cannot begin before
    that change, so the detector's onset for the caller's own series, where earlier, says
    whether the rise was already under way when a later change landed."""
    seen = troubled.get((rise.caller, rise.kind), math.inf)
    measured = rise.onset if rise.onset is not None else math.inf
    return min(seen, measured)


def new_share(index: Index, service: str, new_pods: frozenset[str]) -> Series:
    """The share of the service's serving pods that run the new version, at each timestamp
    any of its pods reported: how far the rollout had got."""
    spans: dict[str, tuple[float, float]] = {}
    stamps = []
    for s in index.get(service, ()):
        if s.pod is None or not s.timestamps or kind_of(s) not in SERVING_KINDS:
            continue
        first, last = spans.get(s.pod, (math.inf, -math.inf))
        spans[s.pod] = (min(first, s.timestamps[0]), max(last, s.timestamps[-1]))
        stamps.append(np.asarray(s.timestamps, dtype=np.float64))
    if not spans or not new_pods & set(spans):
        empty = np.asarray([], dtype=np.float64)
        return empty, empty
    times = np.unique(np.concatenate(stamps))
    new = np.zeros(times.size)
    every = np.zeros(times.size)
    for pod, (first, last) in spans.items():
        on = (times >= first) & (times <= last)
        every += on
        if pod in new_pods:
            new += on
    return times, np.where(every > 0, new / np.maximum(every, 1), 0.0)


def follows(series: Series, share: Series, span: tuple[float, float], lag: float = 0.0) -> float:
    """How closely ``series`` followed a rollout's ``share`` over ``span`` (Pearson's r; 0
    where either is flat or missing), ``lag`` seconds behind it: a build that answers wrong
    fails its callers, and one that no longer calls starves its callee, as its new pods
    take over the requests."""
    times, values = series
    share_t, share_v = share
    inside = (times >= span[0]) & (times <= span[1])
    if share_t.size == 0 or inside.sum() < 3:
        return 0.0
    x = values[inside]
    y = np.interp(times[inside] - lag, share_t, share_v, left=0.0, right=float(share_v[-1]))
    if float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def losses_of(
    open_: Sequence[Judgement], index: Index, hood: Neighbourhood, end: float
) -> dict[int, list[Comparison]]:
    """Each change's callees that lost requests it no longer sends, but for a callee that
    went down (its requests went with it, whoever calls it); where several changed callers
    of one callee claim its loss, only one takes it (:func:`loss_taker`)."""
    found: dict[int, list[Comparison]] = {}
    claims: dict[str, list[tuple[float, int]]] = {}
    judged = {id(j): j for j in open_}
    changed = set(hood.changed)
    for j in open_:
        service = j.change.service
        others = {
            callee: [c for c in hood.callers.get(callee, ()) if c != service]
            for callee in hood.callees.get(service, ())
            if callee not in hood.down  # a target that went down serves nobody's requests
        }
        sole = frozenset(c for c, o in others.items() if changed.isdisjoint(o))
        found[id(j)] = callee_losses(j.change, index, others, end, sole)
        for c in found[id(j)]:
            claims.setdefault(c.signal.service, []).append((j.change.at.timestamp(), id(j)))
    for callee, claimants in claims.items():
        began = loss_onset(index, callee, min(at for at, _ in claimants), end)
        if len(claimants) < 2 or began is None:
            continue
        keep = loss_taker([key for _, key in claimants], judged, index, callee, began, end)
        for _, key in claimants:
            if key != keep:
                found[key] = [c for c in found[key] if c.signal.service != callee]
    return found
