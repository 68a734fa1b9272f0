"""Rank services as root-cause candidates.

A service's score multiplies four factors, each with a reason the report can show:

- **strength**: its strongest findings (top three, decaying), each weighted by whether its
  kind reads as a cause (saturated resources, changes, the service going silent) or as a
  symptom (latency, errors, traffic);
- **onset**: faults start at the cause and spread upstream, so services whose anomalies begin
  later than the earliest strong onset are discounted, gently (onsets are noisy at 1 min);
- **call graph** (when known): a service whose own callees are anomalous from no later than
  it is probably just waiting on them; a service whose callers suffer is consistent with a
  cause;
- **blame**: error logs elsewhere that name this service as unreachable or failing;
- **own symptoms**: a saturated resource or a deploy that stays off the service's own
  latency and errors (when those are measured) is probably harmless, and a dependency only
  explains a caller's latency or errors by showing them itself (or by dying).

A change that lands after the alerted services' symptoms began is a reaction to the incident,
not its cause, and weighs little.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.detect.kinds import CAUSE_KINDS
from agent.detect.logs import LogFinding
from agent.detect.series import SeriesFinding
from agent.hypothesis import fault_scores, hypothesize, strength
from agent.models import FaultType, SignalKind, Topology

_BLAME_SIGNATURES = frozenset({"refused", "timeout", "reset", "upstream"})
_CRASH = re.compile(r"restart|oom|crash|killed", re.IGNORECASE)


@dataclass
class ServiceScore:
    service: str
    score: float = 0.0
    onset: float | None = None
    fault_type: FaultType = FaultType.UNKNOWN
    metrics: list[SeriesFinding] = field(default_factory=list)
    logs: list[LogFinding] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    strength: float = 0.0


def metric_weight(f: SeriesFinding, visible: float | None = None) -> float:
    """How much one metric finding says "this is where it started".

    ``visible`` is when the alerted services' symptoms began: a change (deploy, config,
    rollback) that lands after that is a reaction to the incident or unrelated to it.
    """
    if f.kind is SignalKind.CHANGE and visible is not None and f.onset > visible:
        return 0.25
    if f.direction == 0:
        return 1.1  # the data stopped: the service (or its exporter) is down
    if f.kind in CAUSE_KINDS:
        return 1.0 if f.direction > 0 or f.kind is SignalKind.CHANGE else 0.35
    return {
        SignalKind.ERRORS: 0.75,
        SignalKind.LATENCY: 0.65,
        SignalKind.TRAFFIC: 0.35 if f.direction > 0 else 0.5,
    }.get(f.kind, 0.5)


def log_weight(f: LogFinding) -> float:
    if f.pattern == "vanished":
        return 0.9
    base = 0.7 if f.level in ("ERROR", "CRITICAL") else 0.45
    # A peer's "connection refused" is about someone else; it is weaker evidence here.
    return base * (0.4 if _blames(f) else 1.0)


def _strength(items: list[float]) -> float:
    items = sorted(items, reverse=True)[:3]
    return sum(w * d for w, d in zip(items, (1.0, 0.5, 0.25), strict=False))


def strength_by(
    s: ServiceScore, cutoff: float | None, threshold: float, visible: float | None = None
) -> float:
    """The service's evidence strength from findings that began by ``cutoff`` (all: None)."""
    weights = [
        strength(f.score, threshold) * metric_weight(f, visible)
        for f in s.metrics
        if cutoff is None or f.onset <= cutoff
    ]
    weights += [
        strength(f.score, threshold) * log_weight(f)
        for f in s.logs
        if cutoff is None or f.onset <= cutoff
    ]
    return _strength(weights)


def _onset(metrics: list[SeriesFinding], logs: list[LogFinding]) -> float | None:
    """When the service's trouble began. Window-level log statistics (an error share, logs
    going quiet) are dated at the window's split, not at an event, so they date nothing."""
    if metrics:
        return min(f.onset for f in metrics)
    return min((f.onset for f in logs if f.pattern in ("new", "burst")), default=None)


def rank_services(
    metrics: list[SeriesFinding],
    logs: list[LogFinding],
    topology: Topology | None,
    threshold: float,
    resolution_s: float,
    alerted: tuple[str, ...] = (),
    coverage: Mapping[str, frozenset[SignalKind]] | None = None,
) -> list[ServiceScore]:
    """Candidates, best first. Deterministic: ties break on the service name.

    ``coverage`` gives the kinds of series each service has at all, anomalous or not: where
    latency or errors are measured, a quiet serving path is evidence too (see
    :func:`_apply_own_symptoms`); a service without resource series is not run by us.
    """
    coverage = coverage or {}
    by_service: dict[str, ServiceScore] = {}
    for f in metrics:
        by_service.setdefault(f.service, ServiceScore(f.service)).metrics.append(f)
    for lf in logs:
        by_service.setdefault(lf.service, ServiceScore(lf.service)).logs.append(lf)
    blame = _blame(logs, threshold)
    unreachable = {p for f in logs if _blames(f) and "refused" in f.signatures for p in f.mentions}
    for service, (_, onset) in blame.items():
        by_service.setdefault(service, ServiceScore(service, onset=onset))

    visible = _alerted_symptom_onset(by_service, alerted)
    for s in by_service.values():
        blamed, blamed_at = blame.get(s.service, (0.0, None))
        s.strength = strength_by(s, None, threshold, visible) + blamed
        s.onset = _onset(s.metrics, s.logs) or blamed_at
        s.score = s.strength
        refused = blamed if s.service in unreachable else 0.0
        kinds = coverage.get(s.service, frozenset())
        s.fault_type = hypothesize(
            fault_scores(
                s.metrics,
                s.logs,
                threshold,
                refused,
                5 * max(resolution_s, 15.0),
                external=bool(kinds) and not kinds & {SignalKind.RESOURCE, SignalKind.SATURATION},
            )
        )
        if blamed:
            s.reasons.append("named as failing in other services' error logs")

    _apply_own_symptoms(
        by_service,
        frozenset(n for n, k in coverage.items() if k & {SignalKind.LATENCY, SignalKind.ERRORS}),
    )
    _apply_onset_order(by_service, resolution_s, alerted)
    graph = _call_graph(topology, logs)
    if graph:
        _apply_call_graph(by_service, graph, resolution_s, threshold, visible, coverage)
        _apply_alert_reach(by_service, graph, alerted)
    ranked = sorted(by_service.values(), key=lambda s: (-s.score, s.service))
    return [s for s in ranked if s.score > 0]


def _blames(f: LogFinding) -> bool:
    """An error about reaching a peer (not about a local pool that happens to name it)."""
    return bool(
        f.mentions
        and f.signatures & _BLAME_SIGNATURES
        and "pool" not in f.signatures
        and f.pattern != "vanished"
    )


def _blame(logs: list[LogFinding], threshold: float) -> dict[str, tuple[float, float]]:
    """Services that other services' error logs say they cannot reach: strength, first seen."""
    blamed: dict[str, tuple[float, float]] = {}
    for f in logs:
        if _blames(f):
            for peer in f.mentions:
                w, t = blamed.get(peer, (0.0, f.onset))
                blamed[peer] = (max(w, strength(f.score, threshold)), min(t, f.onset))
    return blamed


class _CallGraph:
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

    def downstream(self, service: str) -> set[str]:
        """Everything ``service`` depends on, directly or not."""
        seen: set[str] = set()
        stack = list(self.callees.get(service, ()))
        while stack:
            nxt = stack.pop()
            if nxt not in seen:
                seen.add(nxt)
                stack.extend(self.callees.get(nxt, ()))
        return seen


def _call_graph(topology: Topology | None, logs: list[LogFinding]) -> _CallGraph:
    """The call graph, plus caller -> callee edges that error logs reveal ("refused by X")."""
    edges = {(e.caller, e.callee) for e in topology.edges} if topology else set()
    edges |= {(f.service, peer) for f in logs if _blames(f) for peer in f.mentions}
    return _CallGraph(topology.services if topology else (), sorted(edges))


def _alerted_symptom_onset(
    by_service: dict[str, ServiceScore], alerted: tuple[str, ...]
) -> float | None:
    """When the alerted services' latency or errors began to move, if they did."""
    return min(
        (
            f.onset
            for name in alerted
            if (s := by_service.get(name)) is not None
            for f in s.metrics
            if f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
        ),
        default=None,
    )


def _incident_onset(by_service: dict[str, ServiceScore], alerted: tuple[str, ...]) -> float | None:
    """When the incident became visible: the alerted services' first symptoms if they have
    any findings, else the earliest onset among the strong candidates."""
    visible = _alerted_symptom_onset(by_service, alerted)
    if visible is not None:
        return visible
    timed = [s for s in by_service.values() if s.onset is not None]
    if not timed:
        return None
    top = max(s.strength for s in timed)
    return min(s.onset for s in timed if s.strength >= 0.5 * top and s.onset is not None)


def _apply_onset_order(
    by_service: dict[str, ServiceScore], resolution_s: float, alerted: tuple[str, ...]
) -> None:
    """Causes start shortly before the symptoms; much earlier is a bystander, later an effect."""
    reference = _incident_onset(by_service, alerted)
    if reference is None:
        return
    tau = max(3 * resolution_s, 15.0)
    for s in by_service.values():
        if s.onset is None:
            continue
        delay = s.onset - reference
        if delay > tau / 3:
            s.score *= 0.6 + 0.4 * math.exp(-delay / tau)
            s.reasons.append(f"anomalies began {delay:.0f}s after the incident became visible")
        elif -delay > 4 * tau:
            s.score *= 0.7 + 0.3 * math.exp(-(-delay - 4 * tau) / (4 * tau))
            s.reasons.append(f"anomalies began {-delay:.0f}s before the incident, maybe unrelated")
        else:
            s.reasons.append("anomalies began just before or as the incident became visible")


def _apply_own_symptoms(by_service: dict[str, ServiceScore], measured: frozenset[str]) -> None:
    """A saturated resource or a deploy that hurts callers hurts the service itself first: its
    own latency or errors move, or it crashes. When its latency and errors are measured and
    stayed normal, the finding is probably harmless (a batch job's CPU burst, an uneventful
    rollout). Deploys are judged more gently: a bad pod can hide in the service average."""
    for s in by_service.values():
        if s.service not in measured:
            continue
        hurt = any(
            f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
            or f.direction == 0
            or _CRASH.search(f.signal.name)
            for f in s.metrics
        ) or any(f.level in ("ERROR", "CRITICAL") and f.pattern != "vanished" for f in s.logs)
        if not hurt:
            deploy = any(f.kind is SignalKind.CHANGE for f in s.metrics)
            s.score *= 0.75 if deploy else 0.55
            s.reasons.append("its own latency and errors stayed normal")


def _apply_alert_reach(
    by_service: dict[str, ServiceScore], graph: _CallGraph, alerted: tuple[str, ...]
) -> None:
    """Faults travel from a dependency up to its callers, so the cause of an alert is the
    alerted service or something it depends on; anything else is discounted (not dropped:
    call graphs are often incomplete)."""
    known = [a for a in alerted if a in graph.nodes]
    if not known:
        return
    reach = set(known).union(*(graph.downstream(a) for a in known))
    for s in by_service.values():
        if s.service not in reach:
            s.score *= 0.6
            s.reasons.append("not on the alerted services' dependency path")


def _symptoms(s: ServiceScore, cutoff: float | None = None) -> set[SignalKind]:
    """Which golden signals of the service went bad (by ``cutoff``): latency, errors."""
    kinds: set[SignalKind] = {
        f.kind
        for f in s.metrics
        if f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
        and f.direction > 0
        and (cutoff is None or f.onset <= cutoff)
    }
    if any(
        f.level in ("ERROR", "CRITICAL")
        and f.pattern != "vanished"
        and (cutoff is None or f.onset <= cutoff)
        for f in s.logs
    ):
        kinds.add(SignalKind.ERRORS)
    return kinds


def _can_explain(
    d: ServiceScore, s: ServiceScore, d_measures: frozenset[SignalKind], cutoff: float | None
) -> bool:
    """Whether dependency ``d`` can have caused ``s``'s symptoms: a caller's latency comes from
    a slow callee, its errors from a failing one. A dead or crashing callee explains both; a
    callee whose matching signal is not measured gets the benefit of the doubt."""
    wanted = _symptoms(s)
    if not wanted:
        return True
    early = [f for f in d.metrics if cutoff is None or f.onset <= cutoff]
    if any(f.direction == 0 or _CRASH.search(f.signal.name) for f in early):
        return True
    shown = _symptoms(d, cutoff)
    return any(kind in shown or kind not in d_measures for kind in wanted)


def _apply_call_graph(
    by_service: dict[str, ServiceScore],
    graph: _CallGraph,
    resolution_s: float,
    threshold: float,
    visible: float | None,
    coverage: Mapping[str, frozenset[SignalKind]],
) -> None:
    tolerance = max(2 * resolution_s, 60.0)
    top = max((s.strength for s in by_service.values()), default=0.0)
    for s in by_service.values():
        # A dependency explains this service only with what it showed by the time this
        # service's own trouble began; what came later cannot have caused it.
        cutoff = s.onset + tolerance if s.onset is not None else None
        explainers = [
            (strength_by(d, cutoff, threshold, visible), d)
            for name in graph.downstream(s.service)
            if (d := by_service.get(name)) is not None
            and d.strength >= 0.35 * top
            and (d.onset is None or cutoff is None or d.onset <= cutoff)
            and _can_explain(d, s, coverage.get(d.service, frozenset()), cutoff)
        ]
        if explainers:
            early, best = max(explainers, key=lambda pair: pair[0])
            own_cause = any(f.kind in CAUSE_KINDS and f.direction > 0 for f in s.metrics[:2])
            s.score *= 0.8 if own_cause else 0.5 if early >= 0.4 * s.strength else 0.75
            s.reasons.append(f"its dependency {best.service} is anomalous too, from no later")
        suffering = [c for c in graph.callers.get(s.service, ()) if c in by_service]
        if suffering and not explainers:
            s.score *= 1.15
            s.reasons.append(f"its callers show symptoms: {', '.join(sorted(suffering)[:3])}")
