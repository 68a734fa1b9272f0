"""New pods that restart: the crash and OOM-kill canary.

A build that leaks memory until the kernel kills it, or crashes on a bad setting, shows in
its pods' restart counters (``kube_pod_container_status_restarts_total``): the new pods
restart while the old ones, over all the minutes the data holds of them, did not. A healthy
rollout's new pods start their counters at zero and keep them there. Before/after, a new
build's memory is only held to a doubling (a new build may well use a little more), so a
leak that the kernel cuts short shows here rather than there.

Restarts are few, so they are compared as rates, not with the rank test the other series
get: a one-sided Poisson test of the new pods' restarts against what the old pods' rate
(with half a restart of prior, so that none is not taken for a rate of zero) predicts over
the new pods' minutes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from agent.models import Signal

RESTART = re.compile(r"restart", re.IGNORECASE)
MIN_RESTARTS = 2  # one restart is a node drained or a pod rescheduled, not a pattern
# Restarts are rare and noiseless, and the old pods' rate is padded: a looser cut than the
# rank test's serves (two restarts of one new pod in 40 minutes, none in the old pods' 3 h).
RESTART_ALPHA = 0.01


def increase(signal: Signal, start: float, end: float) -> float:
    """How much a counter went up from ``start`` to ``end`` (a drop is a reset, not a
    negative count)."""
    steps = np.diff(np.asarray([v for _, v in signal.points(start, end)], dtype=np.float64))
    return float(steps[steps > 0].sum()) if steps.size else 0.0


def exposure(signal: Signal, start: float, end: float) -> float:
    """Minutes the series ran from ``start`` to ``end``."""
    inside = [t for t in signal.timestamps if start <= t <= end]
    return (inside[-1] - inside[0]) / 60.0 if len(inside) > 1 else 0.0


def poisson_tail(k: float, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean)."""
    if k <= 0:
        return 1.0
    term, below = math.exp(-mean), 0.0
    for i in range(math.ceil(k)):
        below += term
        term *= mean / (i + 1)
    return max(0.0, 1.0 - below)


def new_pods_restart(
    by_pod: Mapping[str, Sequence[Signal]],
    new_pods: set[str],
    at: float,
    end: float,
    lead: float,
) -> tuple[Signal, list[float], list[float], float] | None:
    """The most restarted new pod's counter, the restarts of each new pod and each old pod,
    and the one-sided p-value that the new pods restart more often than the old ones; None
    where there is no restart counter on either side."""
    new = [s for p in sorted(new_pods) for s in by_pod[p] if RESTART.search(s.name)]
    old = [s for p in sorted(set(by_pod) - new_pods) for s in by_pod[p] if RESTART.search(s.name)]
    old_minutes = sum(exposure(s, at - lead, end) for s in old)
    if not new or old_minutes <= 0:
        return None
    new_counts = [increase(s, at, end) for s in new]
    old_counts = [increase(s, at - lead, end) for s in old]
    rate = (sum(old_counts) + 0.5) / old_minutes
    mean = rate * sum(exposure(s, at, end) for s in new)
    worst = max(zip(new_counts, range(len(new)), strict=True))[1]
    return new[worst], new_counts, old_counts, poisson_tail(sum(new_counts), mean)
