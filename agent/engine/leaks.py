"""New pods whose memory grows with their age: the leak canary.

A build that leaks holds more memory the longer each of its pods lives, until the kernel
kills the pod and the climb starts over. Against the pods before the change a young leaking
pod may hold well under twice as much (the before/after cut for memory, which a new build
may well use a little more of), and the restarts may be too few to tell; the climb itself is
plain. So each new pod's memory late in its life, up to its first reset, is compared with
its memory early in it (after the start-up minutes), the one-sided rank test pooled over the
new pods; the old pods over the minutes before the change are the control: where they grew
as much, memory grows with the load or the day, not with the build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from agent.engine.mannwhitney import ALPHA, mann_whitney_greater
from agent.models import Signal

MEMORY = re.compile(r"memory", re.IGNORECASE)
GROWTH = "memory growth"  # what the comparison measures, in words
GROWTH_RATIO = 1.5  # late in a pod's life against early in it: a leak, not a cache filling
MIN_LIFE = 9  # samples of a pod's life before its first reset: thirds of three
RESET_SHARE = 0.7  # a sample below this share of the one before is a restart, not a wobble

Growth = tuple[Signal, NDArray[np.float64], NDArray[np.float64], float]


def _first_life(signal: Signal, start: float, end: float) -> NDArray[np.float64]:
    """The series' values from ``start`` to ``end``, up to its first reset."""
    values = np.asarray([v for _, v in signal.points(start, end)], dtype=np.float64)
    drops = np.flatnonzero(values[1:] < RESET_SHARE * values[:-1])
    return values[: drops[0] + 1] if drops.size else values


def _thirds(lives: Sequence[NDArray[np.float64]]) -> tuple[NDArray[np.float64], ...]:
    """The first and last thirds of each life, pooled."""
    long = [v for v in lives if v.size >= MIN_LIFE]
    early = [v[: v.size // 3] for v in long]
    late = [v[-(v.size // 3) :] for v in long]
    empty = np.asarray([], dtype=np.float64)
    return (np.concatenate(early) if early else empty, np.concatenate(late) if late else empty)


def grows(early: NDArray[np.float64], late: NDArray[np.float64]) -> tuple[bool, float]:
    """Whether ``late`` is significantly above ``early`` by :data:`GROWTH_RATIO`, and the
    one-sided p-value."""
    if early.size == 0 or late.size == 0:
        return False, 1.0
    p = mann_whitney_greater(late, early)
    ratio = float(np.median(late)) / max(float(np.median(early)), 1e-12)
    return p < ALPHA and ratio >= GROWTH_RATIO, p


def new_pods_grow(
    by_pod: Mapping[str, Sequence[Signal]],
    new_pods: set[str],
    at: float,
    end: float,
    lead: float,
    warmup: float,
) -> Growth | None:
    """A new pod's memory series, the pooled early and late memory of the new pods' lives,
    and the p-value that it grew, where it grew and the old pods' memory before the change
    did not grow as much; None otherwise."""
    new = [s for p in sorted(new_pods) for s in by_pod[p] if MEMORY.search(s.name)]
    old = [s for p in sorted(set(by_pod) - new_pods) for s in by_pod[p] if MEMORY.search(s.name)]
    lives = [_first_life(s, max(at, s.timestamps[0] + warmup), end) for s in new if s.timestamps]
    early, late = _thirds(lives)
    grew, p = grows(early, late)
    if not grew:
        return None
    before = [_first_life(s, at - lead, at) for s in old]
    if grows(*_thirds(before))[0]:
        return None
    return new[0], early, late, p
