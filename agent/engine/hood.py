"""The neighbourhood of the changes: who calls whom, and which services were in trouble of
their own, since when.

"In trouble of its own" is a serving errors or latency series that stayed up for a few
samples (the detector's findings), a change whose new pods are worse than its old ones (on
both where they restart), or a service that went down as a whole
(:func:`~agent.engine.outages.gone_silent`). Trouble off the serving path (CPU, disk, a
connection pool) is kept apart: it cannot be set against requests. :mod:`agent.engine.trouble`
and :mod:`agent.engine.owners` read it to decide what explains what.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.engine.canary import RESTARTS, Judgement
from agent.engine.detect.kinds import callee_of, own_series
from agent.engine.detect.series import SeriesFinding
from agent.engine.service_score import CLEAR_SHARE
from agent.models import SignalKind, Topology

TOLERANCE_S = 180.0  # onsets at 1-minute scrapes are good to a few samples
PERSISTENT = 3  # samples in a row a serving series must stay up to count as trouble
SERVING = (SignalKind.ERRORS, SignalKind.LATENCY)
OWN_LOAD = frozenset({SignalKind.RESOURCE, SignalKind.SATURATION})
UNSIZED = OWN_LOAD | {SignalKind.OTHER}  # trouble that cannot be set against requests
Trouble = Mapping[tuple[str, SignalKind], float]  # (service, errors|latency) -> when it began


@dataclass(frozen=True)
class Neighbourhood:
    """Who calls whom (topology plus per-edge series), which services were in trouble of
    their own and since when, and when each changed service last changed."""

    callers: Mapping[str, Sequence[str]]
    callees: Mapping[str, Sequence[str]]
    troubled: Trouble
    changed: Mapping[str, float] = field(default_factory=dict)
    suspect: frozenset[str] = frozenset()  # changed services whose change is suspect
    unsized: Mapping[str, float] = field(default_factory=dict)  # trouble off the serving path
    rolled: Mapping[str, Judgement] = field(default_factory=dict)  # changed service -> its own
    sick: Mapping[str, float] = field(default_factory=dict)  # clear own trouble off the path
    down: Mapping[str, float] = field(default_factory=dict)  # went silent as a whole, since

    def downstream(self, service: str) -> list[str]:
        """Everything ``service`` depends on, directly or not, nearest first."""
        seen, order, frontier = {service}, [], [service]
        while frontier:
            frontier = [c for s in frontier for c in sorted(self.callees.get(s, ()))]
            frontier = [c for c in dict.fromkeys(frontier) if c not in seen]
            seen.update(frontier)
            order += frontier
        return order

    def troubled_between(
        self, service: str, kinds: Iterable[SignalKind], since: float, by: float | None
    ) -> bool:
        """Whether the service's own ``kinds`` went bad from ``since`` to ``by`` (give or
        take :data:`TOLERANCE_S`)."""
        began = self.began(service, kinds, by)
        return since <= began < math.inf and (by is None or began <= by + TOLERANCE_S)

    def began(self, service: str, kinds: Iterable[SignalKind], by: float | None) -> float:
        """When the service's own ``kinds`` went bad: from its findings, or on errors and
        latency from when it went down, if by ``by`` (to the sample: a target's data stops
        when it does, so no onset is fuzzier)."""
        kinds = list(kinds)
        began = min((self.troubled.get((service, k), math.inf) for k in kinds), default=math.inf)
        down = self.down.get(service, math.inf)
        if set(kinds) & set(SERVING) and (by is None or down <= by):
            return min(began, down)
        return began


def neighbourhood(
    topology: Topology | None,
    observed: Iterable[tuple[str, str]],
    findings: Sequence[SeriesFinding],
    judged: Sequence[Judgement],
    down: Mapping[str, float] | None = None,
) -> Neighbourhood:
    """Callers and callees from the topology and the per-edge series; the services in
    trouble of their own from the detector's findings, the same-minutes canary, and
    ``down`` (:func:`~agent.engine.outages.gone_silent`: on errors and latency from when it
    stopped reporting, its callers' calls failing or timing out)."""
    edges = {(e.caller, e.callee) for e in topology.edges} if topology else set()
    callers: dict[str, list[str]] = {}
    callees: dict[str, list[str]] = {}
    for caller, callee in sorted(edges | set(observed)):
        callers.setdefault(callee, []).append(caller)
        callees.setdefault(caller, []).append(callee)
    troubled: dict[tuple[str, SignalKind], float] = {}
    unsized: dict[str, float] = {}
    for f in findings:
        # A sample or two is a draining pod's last requests or a glitch, not trouble.
        lasting = f.run >= PERSISTENT and not f.at_data_end and not f.pinned
        own = own_series(f.signal)
        if f.kind in SERVING and lasting and own and f.direction > 0:
            key = (f.service, f.kind)
            troubled[key] = min(troubled.get(key, math.inf), f.onset)
        elif f.kind in UNSIZED and own and (lasting or f.direction == 0):
            unsized[f.service] = min(unsized.get(f.service, math.inf), f.onset)
    for j in judged:
        if j.verdict == "suspect" and any(c.worse and c.same_minutes for c in j.comparisons):
            add_trouble(troubled, j)
    sick, gone = _sick(findings), dict(down or {})
    return Neighbourhood(callers, callees, troubled, unsized=unsized, sick=sick, down=gone)


def _sick(findings: Sequence[SeriesFinding]) -> dict[str, float]:
    """When each service's clear trouble off the serving path began: its CPU, disk, lost
    packets or connection pool up for a few samples, in a finding at least
    :data:`CLEAR_SHARE` of its strongest one (a marginal blip on one pod, or throttling that
    eased, is not). A pool of client connections is the service's own capacity, though its
    series is named for the client side: requests queued for a connection wait on the pool
    (its size, connections leaked or held), not on a callee's answers."""
    top: dict[str, float] = {}
    for f in findings:
        top[f.service] = max(top.get(f.service, 0.0), f.score)
    sick: dict[str, float] = {}
    for f in findings:
        clear = f.score >= CLEAR_SHARE * top[f.service] and f.run >= PERSISTENT
        own = own_series(f.signal) or (
            f.kind is SignalKind.SATURATION and callee_of(f.signal) is None
        )
        if f.kind in UNSIZED and own and f.direction > 0 and clear:
            sick[f.service] = min(sick.get(f.service, math.inf), f.onset)
    return sick


def add_trouble(troubled: dict[tuple[str, SignalKind], float], j: Judgement) -> None:
    """A suspect change's service is in trouble of its own, from the change, on the serving
    signals its new version made worse, and on both where its new pods restart (a pod
    killed or crashing fails and delays the requests it held)."""
    at = j.change.at.timestamp()
    for c in j.comparisons:
        crashing = c.worse and c.label == RESTARTS
        for kind in SERVING if crashing else (c.kind,) if c.worse and c.kind in SERVING else ():
            key = (j.change.service, kind)
            troubled[key] = min(troubled.get(key, math.inf), at)
