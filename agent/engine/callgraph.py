"""Call-graph rules of the ranking: faults travel from a dependency up to its callers.

- a service whose own dependencies are anomalous from no later than it, with the symptoms it
  has, is probably just waiting on them (a dependency's symptoms are dated by when it felt
  them: their step, where they crept up first; a callee whose calls the service's new build
  dropped is not one it waits on); one whose callers suffer is consistent with a cause;
- the cause of an alert is the alerted service or something it depends on;
- a target whose data stops is down only if its callers notice, and explains only what
  began as it went down (a target's data stops to the scrape);
- a dependency whose only sign of trouble is its build's own small step does not explain a
  build whose own pods stepped up many times as much (:mod:`agent.engine.sizes`).

The graph is the topology's edges plus caller -> callee edges that error logs reveal
("connection refused by X").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace

from agent.engine.detect.kinds import CAUSE_KINDS
from agent.engine.detect.logfinding import APPEARED, LogFinding
from agent.engine.detect.series import SeriesFinding
from agent.engine.service_score import ServiceScore, blames, crashed, strength_by, symptoms
from agent.engine.sizes import shows_enough
from agent.models import SignalKind, Topology


class CallGraph:
    """Caller/callee adjacency built once per ranking (``Topology.callees`` scans all edges)."""

    def __init__(self, services: Iterable[str], edges: Iterable[tuple[str, str]]) -> None:
        self.callees: dict[str, list[str]] = defaultdict(list)
        self.callers: dict[str, list[str]] = defaultdict(list)
        for caller, callee in edges:
            self.callees[caller].append(callee)
            self.callers[callee].append(caller)
        self.nodes = set(services) | set(self.callees) | set(self.callers)

    def __bool__(self) -> bool:
        return bool(self.callees)

    def downstream(self, service: str, avoiding: frozenset[str] = frozenset()) -> set[str]:
        """Everything ``service`` depends on, directly or not (not through ``avoiding``)."""
        return _reach(self.callees, service, avoiding)

    def upstream(self, service: str) -> set[str]:
        """Everything that depends on ``service``, directly or not."""
        return _reach(self.callers, service)


def _reach(
    adjacency: Mapping[str, list[str]], service: str, avoiding: frozenset[str] = frozenset()
) -> set[str]:
    seen: set[str] = set()
    stack = list(adjacency.get(service, ()))
    while stack:
        nxt = stack.pop()
        if nxt not in seen and nxt not in avoiding:
            seen.add(nxt)
            stack.extend(adjacency.get(nxt, ()))
    return seen


def call_graph(
    topology: Topology | None,
    logs: list[LogFinding],
    observed: Iterable[tuple[str, str]] = (),
) -> CallGraph:
    """The call graph, plus caller -> callee edges that per-edge series measure
    (``observed``) and that error logs reveal ("refused by X")."""
    edges = {(e.caller, e.callee) for e in topology.edges} if topology else set()
    edges |= set(observed)
    edges |= {(f.service, peer) for f in logs if blames(f) for peer in f.mentions}
    return CallGraph(topology.services if topology else (), sorted(edges))


def _felt(s: ServiceScore, start: float, end: float) -> bool:
    """Whether the service's latency or errors went bad between ``start`` and ``end``."""
    return any(
        f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
        and f.direction > 0
        and start <= f.onset <= end
        for f in s.metrics
    ) or any(
        f.level in ("ERROR", "CRITICAL") and f.pattern in APPEARED and start <= f.onset <= end
        for f in s.logs
    )


def doubt_unfelt_silences(
    by_service: dict[str, ServiceScore],
    graph: CallGraph,
    blame: Mapping[str, tuple[float, float]],
    threshold: float,
    tolerance: float,
) -> None:
    """A target whose data stops is down only if someone notices: its callers (any service
    when the call graph does not know it) fail or slow down, or name it in their errors,
    before its data comes back. A gap nobody feels is a scrape or exporter hiccup, so its
    silent series count as barely anomalous."""
    for s in by_service.values():
        gaps = [f for f in s.metrics if f.direction == 0]
        if not gaps:
            continue
        start = min(f.onset for f in gaps) - tolerance
        back = max(f.end for f in gaps) + tolerance
        if s.service in blame and blame[s.service][1] <= back:
            continue
        watchers = graph.upstream(s.service) if s.service in graph.nodes else set(by_service)
        if any(
            _felt(w, start, back)
            for name in watchers - {s.service}
            if (w := by_service.get(name)) is not None
        ):
            continue
        s.metrics = [replace(f, score=threshold) if f.direction == 0 else f for f in s.metrics]
        s.reasons.append("its data stopped, but no caller failed meanwhile (a scrape gap?)")


def apply_alert_reach(
    by_service: dict[str, ServiceScore],
    graph: CallGraph,
    alerted: tuple[str, ...],
    dropping: frozenset[str] = frozenset(),
) -> None:
    """Faults travel from a dependency up to its callers, so the cause of an alert is the
    alerted service or something it depends on; anything else is discounted (not dropped:
    call graphs are often incomplete). Lost requests travel down instead: a caller that
    stopped sending an alerted service its requests (``dropping``) is on the path."""
    known = [a for a in alerted if a in graph.nodes]
    if not known:
        return
    reach = set(known).union(*(graph.downstream(a) for a in known))
    for s in by_service.values():
        if s.service not in reach and s.service not in dropping:
            s.score *= 0.6
            s.reasons.append("not on the alerted services' dependency path")


def _can_explain(
    d: ServiceScore,
    s: ServiceScore,
    d_measures: frozenset[SignalKind],
    cutoff: float | None,
    since: float | None,
    scrape: float,
) -> bool:
    """Whether dependency ``d`` can have caused ``s``'s symptoms: a caller's latency comes from
    a slow callee, its errors from a failing one, and they show up at the caller at once, so
    the callee's must have begun about when the caller's did (``since`` .. ``cutoff``), not
    minutes before. A dead or crashing callee explains both; a callee whose matching signal
    is not measured gets the benefit of the doubt. A callee's data that stopped dates its
    going down to the ``scrape`` (a target that died between two scrapes is missing from the
    second, while its callers' rates over that interval already count failed calls), and
    calls to a target that is down fail from the next one: it explains only trouble that
    began as it went down (from ``since`` to a scrape after the caller's own onset), not
    trouble that began while it still answered, nor minutes after it was gone."""
    wanted = symptoms(s)
    if not wanted or s.service in d.waited_by:
        return True
    early = [f for f in d.metrics if cutoff is None or f.onset <= cutoff]
    began = None if s.onset is None else s.onset + scrape
    if any(crashed(f) for f in early) or any(_down_by(f, since, began) for f in early):
        return True
    shown = symptoms(d, cutoff, since) | _grown_into(d, cutoff, since)
    shown -= {k for k in shown if not shows_enough(d, s, k, cutoff, since)}
    return any(kind in shown or kind not in d_measures for kind in wanted)


def _down_by(f: SeriesFinding, since: float | None, began: float | None) -> bool:
    """Whether the finding is a dependency's data stopping from ``since`` to ``began``."""
    if f.direction != 0:
        return False
    return (since is None or since <= f.onset) and (began is None or f.onset <= began)


def _grown_into(d: ServiceScore, cutoff: float | None, since: float | None) -> set[SignalKind]:
    """A dependency's latency or errors that crept up a little before ``since`` but took
    their step (half their rise) between ``since`` and ``cutoff``: a caller absorbs a few
    slow or failed calls (retries, timeouts with room) and feels them when they jump, so
    the step dates what it felt, not the first flicker the detector's run reaches back to."""
    if since is None:
        return set()
    return {
        f.kind
        for f in d.metrics
        if f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
        and f.direction > 0
        and f.onset < since
        and since <= _stepped(f) <= (math.inf if cutoff is None else cutoff)
    }


def _stepped(f: SeriesFinding) -> float:
    """When a rising series first reached half of the rise it held at its peak (its onset
    where the numbers to tell are missing)."""
    base, level = f.baseline.median, f.level
    if base is None or level is None or level <= base:
        return f.onset
    half = base + (level - base) / 2
    for at, value in f.signal.points(f.onset):
        if value >= half:
            return at
    return f.onset


def apply_call_graph(
    by_service: dict[str, ServiceScore],
    graph: CallGraph,
    resolution_s: float,
    threshold: float,
    visible: float | None,
    coverage: Mapping[str, frozenset[SignalKind]],
) -> None:
    # Onsets are good to a sample or two (scrape and rate-window lag), so what a dependency
    # showed more than three samples after a caller's trouble began cannot have caused it.
    tolerance = max(3 * resolution_s, 10.0)
    top = max((s.strength for s in by_service.values()), default=0.0)
    for s in by_service.values():
        # A dependency explains this service only with what it showed by the time this
        # service's own trouble began; what came later cannot have caused it, and symptoms
        # that began well before would have reached this service well before.
        cutoff = s.onset + tolerance if s.onset is not None else None
        since = s.onset - tolerance if s.onset is not None else None
        explainers = [
            (strength_by(d, cutoff, threshold, visible), d)
            # A callee whose requests this service's new build stopped sending shows what
            # the build did (its traffic and work fell), not trouble the service waits on;
            # so do the dependencies the service reaches only through it.
            for name in graph.downstream(s.service, s.dropped_calls)
            if (d := by_service.get(name)) is not None
            and d.strength >= 0.35 * top
            and (d.onset is None or cutoff is None or d.onset <= cutoff)
            and _can_explain(
                d, s, coverage.get(d.service, frozenset()), cutoff, since, resolution_s
            )
        ]
        if explainers:
            early, best = max(explainers, key=lambda pair: pair[0])
            # Its own saturation or change counts only if it did not come after the
            # dependency's trouble (throttling once requests pile up is a consequence).
            lead = best.onset if best.onset is not None else math.inf
            own_cause = any(
                f.kind in CAUSE_KINDS and f.direction > 0 and f.onset <= lead for f in s.metrics[:2]
            )
            s.score *= 0.8 if own_cause else 0.5 if early >= 0.4 * s.strength else 0.75
            s.reasons.append(f"its dependency {best.service} is anomalous too, from no later")
        suffering = [c for c in graph.callers.get(s.service, ()) if c in by_service]
        if suffering and not explainers:
            s.score *= 1.15
            s.reasons.append(f"its callers show symptoms: {', '.join(sorted(suffering)[:3])}")
