"""A service that went missing from the requests it used to take part in, from log lines
that carry a trace id.

A request's trace id is on every line each service writes for it, so the services that log
under one trace id are the ones that request reached. When a method throws before it logs, or
before it makes the call that reaches the next service, that service's lines drop out of the
requests that used to hold them, while the request's other services go on logging. Counted per
pair of services: of the traces where ``companion`` logged, the share where ``service`` logged
too, before the split and after it (a binomial test of the drop).

One companion losing a service says as much about the companion (it stopped making the call)
as about the service; several losing it at once point at the service itself: it no longer
gets as far as its lines in any of those requests. Like :mod:`.traces`, it needs no trace
store and no span parents.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

# A companion's traces on each side of the split that make a share worth comparing.
MIN_TRACES = 3
# The service must have been in at least this share of a companion's traces before.
MIN_SHARE = 0.5
# Companions that must have lost the service: fewer is a caller that stopped calling it.
MIN_COMPANIONS = 3


@dataclass(frozen=True)
class Missing:
    """A service whose lines dropped out of the traces of several companions."""

    service: str
    companions: frozenset[str]  # the services whose traces lost it
    expected: float  # traces of the strongest companion that were due to hold it
    observed: int  # ... and did
    score: float  # the strongest companion's binomial z


@dataclass
class Companions:
    """Which services logged under each trace id, and when each trace's first line came."""

    traces: dict[str, tuple[float, set[str]]] = field(default_factory=dict)

    def passed(self, trace_id: str, time: float, service: str) -> None:
        """A line of ``trace_id`` logged by ``service`` at ``time``, whatever its level."""
        seen = self.traces.get(trace_id)
        if seen is None:
            self.traces[trace_id] = (time, {service})
            return
        seen[1].add(service)
        if time < seen[0]:
            self.traces[trace_id] = (time, seen[1])

    def services(self, trace_id: str) -> frozenset[str]:
        """The services that logged under ``trace_id``."""
        seen = self.traces.get(trace_id)
        return frozenset(seen[1]) if seen is not None else frozenset()

    def missing(self, split: float, threshold: float) -> list[Missing]:
        """Services that dropped out of the traces of :data:`MIN_COMPANIONS` companions or
        more, each drop a binomial z of at least ``threshold``. A trace belongs to the side
        of the split where its first line lies; a trace one service logged alone says
        nothing about who else a request reaches."""
        # Requests of one kind reach the same services: count each set of services once.
        paths: Counter[tuple[bool, frozenset[str]]] = Counter(
            (start < split, frozenset(services))
            for start, services in self.traces.values()
            if len(services) >= 2
        )
        before: Counter[tuple[str, str]] = Counter()
        after: Counter[tuple[str, str]] = Counter()
        for (early, services), n in paths.items():
            side = before if early else after
            for companion in services:
                for service in services:
                    side[(companion, service)] += n  # (c, c): the traces c logged in
        lost: dict[str, list[tuple[float, str, float, int]]] = {}
        for (companion, service), had in before.items():
            if companion == service:
                continue
            n_before = before[(companion, companion)]
            n_after = after[(companion, companion)]
            if n_before < MIN_TRACES or n_after < MIN_TRACES:
                continue
            share = (had + 0.5) / (n_before + 1)  # smoothed: a share of 1 has no spread
            if share < MIN_SHARE:
                continue
            due = n_after * share
            kept = after[(companion, service)]
            z = (due - kept) / math.sqrt(n_after * share * (1 - share))
            if z >= threshold:
                lost.setdefault(service, []).append((z, companion, due, kept))
        found: list[Missing] = []
        for service, drops in lost.items():
            if len(drops) < MIN_COMPANIONS:
                continue
            z, _, due, kept = max(drops)
            found.append(Missing(service, frozenset(c for _, c, _, _ in drops), due, kept, z))
        return found
