"""Whether a service's old pods got as bad as its new ones after a change: then the trouble
reached every pod, and the new build is not what made it worse (a caller rolling out while
its callee breaks); or whether they stayed well beside the new ones, which then fail on their
own build. Used by :mod:`agent.engine.canary` where too few shared minutes force a
before/after comparison, and to check a same-minutes one minute by minute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from agent.models import Signal


def values_between(signals: Sequence[Signal], start: float, end: float) -> NDArray[np.float64]:
    """The series' values from ``start`` to ``end``, pooled, gaps left out."""
    return np.asarray([v for s in signals for _, v in s.points(start, end)], dtype=np.float64)


OLD_SHARE = 0.5  # of the new pods' rise over before that the old pods' own rise must reach
OLD_QUARTER = 0.25  # ... in this share of their samples after the change
SIDE_BY_SIDE = 2  # ... or side by side with the new pods, in this many shared minutes


def as_bad(
    old_series: list[Signal],
    new_series: list[Signal],
    at: float,
    base: float,
    new: float,
    noise: float,
) -> bool:
    """Whether the old pods, in the minutes they still served after the change, got worse
    too, by at least half as much as the new pods (median ``new`` against ``base`` before)
    and beyond their usual noise before the change (``noise``, their 95th percentile), in
    a quarter of their samples (the incident may reach them only in their last minutes as
    it ramps up), or side by side with the new pods (:func:`_as_bad_side_by_side`). Too few
    shared minutes for a rank test can still say this much. A change after which fewer
    pods serve is exempt: the same load on fewer pods makes every pod worse."""
    if _fewer_serve(old_series, new_series, at):
        return False
    values = values_between(old_series, at, math.inf)
    if new <= base:
        return False
    high = int((values > max(base + OLD_SHARE * (new - base), noise)).sum())
    if high >= max(1.0, OLD_QUARTER * values.size):
        return True
    return _as_bad_side_by_side(old_series, new_series, at, base, noise)


def as_bad_beside(
    old_series: list[Signal], new_series: list[Signal], at: float, lead: float
) -> bool:
    """Whether, in the minutes old and new pods both served after the change, the old pods
    got as bad as the new ones side by side (:func:`_as_bad_side_by_side`, against their
    median and 95th percentile over the ``lead`` seconds before the change). A rank test
    over the same minutes pools them; in a rollout the new pods' minutes come later than
    the old ones', so trouble that grew meanwhile (a callee's rollout taking over, failing
    every pod that calls it) makes the new pods look worse when, minute by minute, they
    were not. A change after which fewer pods serve is exempt, as in :func:`as_bad`."""
    before = values_between(old_series, at - lead, at - 1e-6)
    if before.size == 0 or _fewer_serve(old_series, new_series, at):
        return False
    base, noise = float(np.median(before)), float(np.quantile(before, 0.95))
    return _as_bad_side_by_side(old_series, new_series, at, base, noise)


def _fewer_serve(old_series: list[Signal], new_series: list[Signal], at: float) -> bool:
    """Whether fewer pods, old and new, serve at the end than old ones did at the change:
    the same load on fewer pods makes every pod worse, so neither test applies."""
    return serving_pods(new_series + old_series) < serving_pods(old_series, at)


def _as_bad_side_by_side(
    old_series: list[Signal], new_series: list[Signal], at: float, base: float, noise: float
) -> bool:
    """Whether, in the minutes old and new pods both served after the change, the new pods
    were up (beyond the 95th percentile before) and the old ones by at least half as much:
    trouble still growing after the old pods left (a callee's rollout taking over) leaves
    them short of the new pods' later level, not of their level at the time."""
    means = _side_by_side(old_series, new_series, at)
    if means is None:
        return False
    old_mean, new_mean = means
    return new_mean > noise and old_mean - base >= OLD_SHARE * (new_mean - base)


OLD_WELL_SHARE = 0.25  # the most of the new pods' rise the old pods' may reach, staying well


def well_beside(
    old_series: list[Signal],
    new_series: list[Signal],
    at: float,
    base: float,
    noise: float,
    warmup: float,
) -> bool:
    """Whether, in the minutes old and new pods both served after the change (the new pods
    past their first ``warmup`` seconds), the new pods were up beyond the 95th percentile
    before (``noise``) while the old ones rose less than a quarter as much over ``base``:
    a dependency's trouble reaches every pod that calls it, so new pods failing beside old
    ones that stayed well fail on their own build, whatever else is in trouble. Too few
    shared minutes for a rank test can still say this much."""
    means = _side_by_side(old_series, new_series, at, warmup)
    if means is None:
        return False
    old_mean, new_mean = means
    return new_mean > noise and old_mean - base < OLD_WELL_SHARE * (new_mean - base)


def _side_by_side(
    old_series: list[Signal], new_series: list[Signal], at: float, warmup: float = 0.0
) -> tuple[float, float] | None:
    """The old and the new pods' mean over the minutes both served from ``at`` on (the new
    pods past their first ``warmup`` seconds), each minute's pods averaged first; None with
    fewer than :data:`SIDE_BY_SIDE` such minutes."""
    old = _by_time(old_series, at)
    new = _by_time(new_series, at, warmup)
    shared = sorted(set(old) & set(new))
    if len(shared) < SIDE_BY_SIDE:
        return None
    old_mean = float(np.mean([np.mean(old[t]) for t in shared]))
    new_mean = float(np.mean([np.mean(new[t]) for t in shared]))
    return old_mean, new_mean


def _by_time(series: list[Signal], at: float, warmup: float = 0.0) -> dict[float, list[float]]:
    """The series' values from ``at`` on, by timestamp (one per pod), each pod's first
    ``warmup`` seconds left out."""
    out: dict[float, list[float]] = {}
    for s in series:
        if not s.timestamps:
            continue
        since = max(at, s.timestamps[0] + warmup)
        for t, v in s.points(since):
            out.setdefault(t, []).append(v)
    return out


def serving_pods(series: list[Signal], at: float | None = None) -> int:
    """How many pods served just before ``at`` (else at the last sample of any of them)."""
    timed = [s for s in series if s.timestamps]
    t = max((s.timestamps[-1] for s in timed), default=0.0) if at is None else at - 1e-6
    return len({s.pod for s in timed if s.timestamps[0] <= t <= s.timestamps[-1] + 90.0})
