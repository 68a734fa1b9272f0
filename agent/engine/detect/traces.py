"""Where failing requests began to fail, from log lines that carry a trace id.

Services that log with OpenTelemetry (or Sleuth, or any tracer's MDC) write the request's
trace id on every line. Errors travel up a call chain: the service whose method failed logs
first, then each caller logs that its call failed. So within one trace, the earliest
error-level line names where that request's failure began, whatever its callers log about it
afterwards. This module counts, per service, the traces whose first error it logged, before
and during the incident, and flags the services that became such an origin far more often.

It needs no trace store and no span parents: only the trace id on log lines and their
timestamps, which log pipelines keep.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from agent.engine.detect.companions import Companions


def poisson_z(observed: float, expected: float) -> float:
    """Poisson deviation of ``observed`` from ``expected`` counts (of lines, of traces)."""
    return (observed - expected) / math.sqrt(expected + 1.0)


# Fewer incident traces than this say nothing about a service becoming an origin.
MIN_TRACES = 3
# The incident rate must be at least this many times the baseline's.
MIN_RATIO = 2.0


@dataclass(frozen=True)
class TraceOrigin:
    """A service that logged the first error of many more traces than before."""

    service: str
    baseline_count: int  # traces whose first error it logged, before the split
    incident_count: int  # ... and after it
    followers: frozenset[str]  # services that logged errors later in those traces
    score: float
    onset: float  # its first origin line in the incident
    cluster: int  # the template (log shape cluster) most of its origin lines share
    sample: str


@dataclass
class _First:
    time: float
    service: str
    cluster: int
    message: str
    later: set[str] = field(default_factory=set)


@dataclass
class ErrorTraces:
    """The first error-level line of every trace, fed line by line in any order."""

    first: dict[str, _First] = field(default_factory=dict)

    def add(self, trace_id: str, time: float, service: str, cluster: int, message: str) -> None:
        seen = self.first.get(trace_id)
        if seen is None:
            self.first[trace_id] = _First(time, service, cluster, message)
        elif time < seen.time:
            if seen.service != service:
                seen.later.add(seen.service)
            seen.time, seen.service, seen.cluster, seen.message = time, service, cluster, message
        elif service != seen.service:
            seen.later.add(service)

    def origins(
        self,
        split: float,
        base_minutes: float,
        inc_minutes: float,
        threshold: float,
        reached: Companions,
    ) -> list[TraceOrigin]:
        """Services that became the origin of failing traces during the incident.

        The count is compared with the baseline's over the minutes each part covers (a
        Poisson deviation, like a bursting template's). A trace id that never left one
        service (``reached``: who logged under each), as when each service starts its own
        trace, says nothing about where a request began to fail."""
        base: Counter[str] = Counter()
        inc: dict[str, list[_First]] = {}
        for trace_id, first in self.first.items():
            if len(reached.services(trace_id)) < 2:
                continue  # the trace never left one service
            if first.time < split:
                base[first.service] += 1
            else:
                inc.setdefault(first.service, []).append(first)
        found: list[TraceOrigin] = []
        for service, firsts in inc.items():
            expected = base[service] * inc_minutes / base_minutes
            n = len(firsts)
            if n < MIN_TRACES or n < MIN_RATIO * (expected + 0.5):
                continue
            score = poisson_z(n, expected)
            if score < threshold:
                continue
            cluster = Counter(f.cluster for f in firsts).most_common(1)[0][0]
            earliest = min(firsts, key=lambda f: f.time)
            found.append(
                TraceOrigin(
                    service=service,
                    baseline_count=base[service],
                    incident_count=n,
                    followers=frozenset(s for f in firsts for s in f.later),
                    score=score,
                    onset=earliest.time,
                    cluster=cluster,
                    sample=next(f.message for f in firsts if f.cluster == cluster),
                )
            )
        return found
