"""A dependency that went down: every pod of it stopped reporting at once.

The detector marks a series whose data stopped (``direction`` 0), and keeps it only where
most of its pod's series stopped with it (the target went down, not an exporter). A service
is down where that is true of every pod of it still serving then, or of its service-wide
series: nothing answers its callers, whose calls to it fail or time out. That is trouble of
its own on errors and latency, as much as a failing dependency's 5xx are, though none of its
own errors or latency series can show it (they stopped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agent.engine.detect.kinds import kind_of, own_series
from agent.engine.detect.series import SeriesFinding
from agent.models import Signal, SignalKind

STILL_S = 180.0  # a pod with data this soon after the others stopped was still up


def gone_silent(findings: Sequence[SeriesFinding], signals: Sequence[Signal]) -> dict[str, float]:
    """When each service whose every pod (or whose service-wide series) stopped reporting
    went down: the last of its pods to stop, where no other pod of it reported within
    :data:`STILL_S` after that, and none of its stopped series came back (data that resumed
    a few minutes later, while the service's callers went on as before, was a scrape gap)."""
    stopped: dict[str, dict[str | None, float]] = {}
    back: set[str] = set()
    for f in findings:
        if f.direction == 0 and own_series(f.signal) and f.kind is not SignalKind.CHANGE:
            pods = stopped.setdefault(f.signal.service, {})
            pods[f.signal.pod] = min(pods.get(f.signal.pod, math.inf), f.onset)
            if f.end < f.signal.timestamps[-1]:
                back.add(f.signal.service)
    down: dict[str, float] = {}
    for service, pods in stopped.items():
        if service in back:
            continue
        if None in pods:
            down[service] = pods[None]
            continue
        began = max(pods.values())
        if not _reporting(signals, service, began, frozenset(p for p in pods if p is not None)):
            down[service] = began
    return down


def _reporting(
    signals: Sequence[Signal], service: str, began: float, stopped: frozenset[str]
) -> bool:
    """Whether a pod of the service other than the ``stopped`` ones reported a value (not a
    change record) within :data:`STILL_S` after ``began``."""
    for s in signals:
        if s.service != service or s.pod is None or s.pod in stopped:
            continue
        if kind_of(s) is SignalKind.CHANGE:
            continue
        if s.points(began, began + STILL_S):
            return True
    return False
