"""Judge each change, canary style: do the new version's pods behave worse than the old ones?

A deploy is not evidence by itself: on a busy day several services roll out in the same minutes
and only one of them (if any) broke something. Like Kayenta's canary judge, each change in or
shortly before the window is tested by comparing what its new pods measure with what its old
pods measure over the same minutes (a one-sided Mann-Whitney U test: "new is worse"), and with
the service's own pods before the change when no old pod is left to compare with. New pods
have no history, so the per-series baseline of :mod:`agent.engine.detect.series` skips them;
this is where they are looked at. So are their restarts (:mod:`agent.engine.restarts`) and
their memory as they age (:mod:`agent.engine.leaks`).

A change is ``suspect`` when its new pods are worse on errors, latency or resources,
``cleared`` when they were compared and match, ``unknown`` when there was nothing to compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from agent.engine.detect.kinds import kind_of
from agent.engine.judgement import Comparison, Judgement
from agent.engine.leaks import GROWTH, new_pods_grow
from agent.engine.mannwhitney import ALPHA, MIN_RATIO, is_worse, mann_whitney_greater, stats_of
from agent.engine.old_pods import as_bad, as_bad_beside, values_between, well_beside
from agent.engine.restarts import MIN_RESTARTS, RESTART_ALPHA, new_pods_restart
from agent.models import Change, Signal, SignalKind

# A change's before/after comparisons look this far back before it.
LEAD_S = 30 * 60.0
# Before the incident split, a change this long before it may still be what broke: an alert
# on a slow burn (a leak filling its limit) fires the better part of an hour after the rollout.
LOOKBACK_S = 60 * 60.0
MIN_SAMPLES = 3  # per side
BEFORE_RATIO = 2.0  # ... when the new pods' CPU or memory is compared with before the change
# ... and their serving errors or latency: a quarter or a third up on every pod before it is
# what the day's drift or another service's trouble gives a healthy pod in half an hour.
SERVING_BEFORE_RATIO = 1.4
WARMUP_S = 120.0  # a new pod's first minutes are start-up, not its steady behaviour
SERVING = frozenset({SignalKind.ERRORS, SignalKind.LATENCY})
RESTARTS = "restarts"  # the label of the new pods' restarts comparison
HIGHER_IS_WORSE = frozenset(
    {SignalKind.ERRORS, SignalKind.LATENCY, SignalKind.RESOURCE, SignalKind.SATURATION}
)


def _warm(signals: Sequence[Signal], start: float, end: float) -> NDArray[np.float64]:
    """A new pod's values once it has warmed up: start-up (class loading, cache filling)
    burns CPU and answers slowly for a minute or two in any healthy rollout."""
    parts = [
        values_between([s], max(start, s.timestamps[0] + WARMUP_S), end)
        for s in signals
        if s.timestamps
    ]
    return np.concatenate(parts) if parts else np.asarray([], dtype=np.float64)


def _new_pods(
    pods: Mapping[str, list[Signal]], change: Change, versions: Mapping[str, str]
) -> set[str]:
    """The pods running the change's new version: by version where the telemetry says it,
    else those whose series begin at the change or after it (new pods have no history)."""
    if change.to_version and any(v == change.to_version for v in versions.values()):
        return {pod for pod in pods if versions.get(pod) == change.to_version}
    at = change.at.timestamp()
    first = {
        pod: min(s.timestamps[0] for s in series if s.timestamps) for pod, series in pods.items()
    }
    return {pod for pod, t in first.items() if t >= at - 60.0}


def judge(
    change: Change,
    signals: Sequence[Signal],
    versions: Mapping[str, str],
    end: float,
) -> Judgement:
    """Compare the change's new pods with its old pods over the minutes both served (or with
    its pods before it), per series, and the service's own serving errors and latency after
    the change with before it."""
    by_pod: dict[str, list[Signal]] = {}
    for s in signals:
        if s.service == change.service and s.pod is not None:
            by_pod.setdefault(s.pod, []).append(s)
    new_pods = _new_pods(by_pod, change, versions)
    comparisons = _by_pod(change, by_pod, new_pods, end)
    crashes = _restarts(change, by_pod, new_pods, end)
    comparisons += [crashes] if crashes is not None and crashes.worse else []
    comparisons += _leak(change, by_pod, new_pods, end)
    # Before/after only for what no same-minutes comparison covers: those minutes also hold
    # the incident's symptoms, which reach a healthy caller right after its own rollout.
    covered = {c.kind for c in comparisons}
    before_after = [c for c in _before_after(change, signals, end) if c.kind not in covered]
    judged = _verdict(change, comparisons + before_after, bool(new_pods))
    served = _first_served(by_pod, new_pods)
    return replace(judged, served=served, new_pods=frozenset(new_pods))


def _first_served(by_pod: Mapping[str, list[Signal]], new_pods: set[str]) -> float | None:
    """When the first new pod reported requests, errors or latency: a pod is created at the
    rollout but takes traffic only once ready, a minute or more later."""
    kinds = SERVING | {SignalKind.TRAFFIC}
    found = [
        s.timestamps[0] for p in new_pods for s in by_pod[p] if s.timestamps and kind_of(s) in kinds
    ]
    return min(found, default=None)


def _restarts(
    change: Change, by_pod: Mapping[str, list[Signal]], new_pods: set[str], end: float
) -> Comparison | None:
    """New pods restarting (OOM kills, crash loops) more often than the old ones did
    (:mod:`agent.engine.restarts`)."""
    found = new_pods_restart(by_pod, new_pods, change.at.timestamp(), end, math.inf)
    if found is None:
        return None
    signal, new, old, p = found
    worse = sum(new) >= MIN_RESTARTS and p < RESTART_ALPHA
    versus = f"{change.from_version or 'old'} pods' restarts before and since the change"
    new_stats, old_stats = stats_of(np.asarray(new)), stats_of(np.asarray(old))
    kind = SignalKind.CHANGE
    return Comparison(signal, kind, new_stats, old_stats, versus, p, worse, label=RESTARTS)


def _leak(
    change: Change, by_pod: Mapping[str, list[Signal]], new_pods: set[str], end: float
) -> list[Comparison]:
    """New pods whose memory grew with their age as the old pods' did not
    (:mod:`agent.engine.leaks`)."""
    found = new_pods_grow(by_pod, new_pods, change.at.timestamp(), end, LEAD_S, WARMUP_S)
    if found is None:
        return []
    signal, early, late, p = found
    versus, kind = "the same new pods early in their lives", SignalKind.RESOURCE
    late_stats, early_stats = stats_of(late), stats_of(early)
    return [Comparison(signal, kind, late_stats, early_stats, versus, p, True, False, label=GROWTH)]


def _before_after(change: Change, signals: Sequence[Signal], end: float) -> list[Comparison]:
    """The service-level errors and latency series (no pod) after the change against the
    same series before it: what a rollout that breaks requests shows where per-pod serving
    series are not kept."""
    at = change.at.timestamp()
    out = []
    for s in signals:
        if s.service != change.service or s.pod is not None:
            continue
        kind = kind_of(s)
        if kind not in (SignalKind.ERRORS, SignalKind.LATENCY):
            continue
        after, before = values_between([s], at, end), values_between([s], at - LEAD_S, at - 1e-6)
        if after.size < MIN_SAMPLES or before.size < MIN_SAMPLES:
            continue
        p = mann_whitney_greater(after, before)
        out.append(
            Comparison(
                s,
                kind,
                stats_of(after),
                stats_of(before),
                "the same series before the change",
                p,
                is_worse(after, before, p) and _past_usual(after, before),
                same_minutes=False,
            )
        )
    return out


def _could_tell(n_new: int, n_ref: int) -> bool:
    """Whether samples this few could show new pods worse at all (a rank test over three
    against three cannot reach :data:`ALPHA`, whatever the values)."""
    if n_new < MIN_SAMPLES or n_ref < MIN_SAMPLES:
        return False
    ordered = np.arange(n_new + n_ref, dtype=np.float64)
    return mann_whitney_greater(ordered[n_ref:], ordered[:n_ref]) < ALPHA


def _compare(
    new_series: list[Signal], new: NDArray[np.float64], ref: NDArray[np.float64], versus: str
) -> Comparison:
    kind = kind_of(new_series[0])
    p = mann_whitney_greater(new, ref)
    same = not versus.startswith(BEFORE)
    # Before/after, CPU and memory follow the load, which an incident changes; only a step
    # far beyond that (a leak filling the limit) says the new build is worse.
    # A steady series (memory) moves beyond its own tiny spread with any new build.
    load = not same and kind not in SERVING
    ratio = MIN_RATIO if same else BEFORE_RATIO if load else SERVING_BEFORE_RATIO
    worse = is_worse(new, ref, p, ratio, beyond_noise=not load)
    worse = worse and (same or load or _past_usual(new, ref))
    return Comparison(new_series[0], kind, stats_of(new), stats_of(ref), versus, p, worse, same)


BEFORE = "the service's pods before the change"


def _past_usual(new: NDArray[np.float64], ref: NDArray[np.float64]) -> bool:
    """Before/after, a serving series is worse only where its typical minute since the change
    is past the upper quartile of the minutes before it: errors that spike (a bad batch, a
    burst) give a healthy build's many samples a significant shift of a few tenths of a
    percent, as the day's drift or a neighbour's trouble does; a build that breaks requests
    moves its usual minute past the old bad ones."""
    return float(np.median(new)) > float(np.quantile(ref, 0.75))


def _by_pod(
    change: Change, by_pod: Mapping[str, list[Signal]], new_pods: set[str], end: float
) -> list[Comparison]:
    """New pods against old pods over the minutes both served; where those minutes are too
    few to tell, new pods after the change against all pods before it (a before/after
    comparison: it also sees whatever else happened meanwhile)."""
    at = change.at.timestamp()
    old_pods = set(by_pod) - new_pods
    names = sorted({s.name for pod in new_pods for s in by_pod[pod]})
    comparisons = []
    for name in names:
        new_series = [s for pod in new_pods for s in by_pod[pod] if s.name == name]
        if kind_of(new_series[0]) not in HIGHER_IS_WORSE:
            continue
        old_series = [s for pod in old_pods for s in by_pod[pod] if s.name == name]
        old_end = max((s.timestamps[-1] for s in old_series if s.timestamps), default=at)
        new = _warm(new_series, at, min(end, old_end))
        old = values_between(old_series, at, end)
        versus = f"{change.from_version or 'old'} pods over the same minutes"
        if not _could_tell(new.size, old.size):
            new = _warm(new_series, at, end)
            old, versus = values_between(old_series, at - LEAD_S, at - 1e-6), BEFORE
        if new.size < MIN_SAMPLES or old.size < MIN_SAMPLES:
            continue
        found = _compare(new_series, new, old, versus)
        found = _unless_old_as_bad(found, old_series, new_series, at)
        comparisons.append(found)
        if found.same_minutes and not found.worse and found.kind in SERVING:
            later = _later(change, new_series, old_series, end)
            later = _unless_old_as_bad(later, old_series, new_series, at) if later else None
            shown = later is not None and (later.worse or OLD_AS_BAD in later.versus)
            comparisons += [later] if later is not None and shown else []
    return _saturation_follows_use(comparisons)


def _unless_old_as_bad(
    found: Comparison, old_series: list[Signal], new_series: list[Signal], at: float
) -> Comparison:
    """A before/after comparison, not worse where the old pods got as bad while they still
    served (:func:`_old_as_bad`); also for the new pods' later minutes (:func:`_later`):
    trouble that reached the old pods in their last minutes is not the build's. Where the
    old pods instead stayed well beside the failing new ones (:func:`well_beside`), it says
    so: :mod:`agent.engine.trouble` does not pass such a worsening up to a dependency. One
    over the same minutes, not worse where minute by minute the old pods were as bad
    (:func:`~agent.engine.old_pods.as_bad_beside`: pooled, the new pods' later minutes
    hold more of trouble that grew meanwhile)."""
    if not found.worse:
        return found
    if found.same_minutes:
        beside = found.kind in SERVING and as_bad_beside(old_series, new_series, at, LEAD_S)
        return (
            replace(found, worse=False, versus=f"{found.versus} ({OLD_AS_BAD})")
            if beside
            else found
        )
    if _old_as_bad(found, old_series, new_series, at):
        return replace(found, worse=False, versus=f"{BEFORE} ({OLD_AS_BAD})")
    base, noise = found.reference.median, found.reference.p95
    if base is None or noise is None or found.kind not in SERVING:
        return found
    if well_beside(old_series, new_series, at, base, noise, WARMUP_S):
        return replace(found, versus=f"{found.versus} ({OLD_WELL})")
    return found


OLD_AS_BAD = "its old pods got as bad while they still served"
OLD_WELL = "its old pods stayed well beside them"


def _old_as_bad(
    found: Comparison, old_series: list[Signal], new_series: list[Signal], at: float
) -> bool:
    """:func:`~agent.engine.old_pods.as_bad` for one comparison's statistics."""
    base, new, noise = found.reference.median, found.new.median, found.reference.p95
    if base is None or new is None or noise is None:
        return False
    return as_bad(old_series, new_series, at, base, new, noise)


def _saturation_follows_use(comparisons: list[Comparison]) -> list[Comparison]:
    """A before/after rise in throttling or a filling pool with no rise in the same pods' use
    of CPU or memory (:data:`MIN_RATIO`) is a healthy build running a little nearer its limit
    (throttling climbs steeply there), not a broken one: it does not count."""
    busier = any(
        c.kind is SignalKind.RESOURCE
        and not c.same_minutes
        and (c.new.median or 0.0) >= MIN_RATIO * (c.reference.median or math.inf)
        for c in comparisons
    )
    if busier:
        return comparisons
    return [
        replace(c, worse=False, versus=f"{c.versus} (its pods do not work harder)")
        if c.worse and c.kind is SignalKind.SATURATION and not c.same_minutes
        else c
        for c in comparisons
    ]


def _later(
    change: Change, new_series: list[Signal], old_series: list[Signal], end: float
) -> Comparison | None:
    """The new pods from the change to the end against all pods before it: a defect in a
    code path that traffic reaches only minutes after the rollout ended shows only here."""
    at = change.at.timestamp()
    new = _warm(new_series, at, end)
    old = values_between(old_series, at - LEAD_S, at - 1e-6)
    if new.size < MIN_SAMPLES or old.size < MIN_SAMPLES:
        return None
    return _compare(new_series, new, old, BEFORE)


def _verdict(change: Change, comparisons: list[Comparison], new_pods: bool) -> Judgement:
    """Suspect when anything compared is worse; cleared only when its serving errors or
    latency were among what was compared (equal CPU says nothing about failing requests)."""
    label = f"{change.service} {change.to_version or 'new version'}"
    worse = [c for c in comparisons if c.worse]
    if worse:
        kinds = ", ".join(sorted({c.what for c in worse}))
        who = "new pods are" if any(c.same_minutes for c in worse) else "it is"
        return Judgement(change, "suspect", comparisons, [f"{label}: {who} worse on {kinds}"])
    serving = {SignalKind.ERRORS, SignalKind.LATENCY}
    if not any(c.kind in serving for c in comparisons):
        why = (
            "no pod of the new version in the data"
            if not new_pods
            else "nothing to compare its serving errors or latency with"
        )
        return Judgement(change, "unknown", comparisons, [f"{label}: {why}"])
    kinds = ", ".join(sorted({c.kind.value for c in comparisons}))
    return Judgement(
        change, "cleared", comparisons, [f"{label}: new pods match on {kinds}: cleared"]
    )


def judge_changes(
    changes: Sequence[Change],
    signals: Sequence[Signal],
    versions: Mapping[str, str],
    start: float,
    split: float,
    end: float,
) -> list[Judgement]:
    """Every change from :data:`LOOKBACK_S` before the split to the end of the window, judged."""
    earliest = max(start, split - LOOKBACK_S)
    relevant = [c for c in changes if earliest <= c.at.timestamp() <= end]
    relevant.sort(key=lambda c: (c.at, c.service))
    by_service: dict[str, list[Signal]] = {}
    for s in signals:
        by_service.setdefault(s.service, []).append(s)
    return [judge(c, by_service.get(c.service, []), versions, end) for c in relevant]
