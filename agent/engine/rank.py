"""Rank services as root-cause candidates.

A service's score multiplies four factors, each with a reason the report can show:

- **strength**: its strongest findings (top three, decaying), each weighted by whether its
  kind reads as a cause (saturated resources, changes, the service going silent) or as a
  symptom (latency, errors, traffic);
- **onset**: faults start at the cause and spread upstream, so services whose anomalies begin
  later than the incident became visible are discounted, gently (onsets are noisy at 1 min).
  A service's trouble, and the alert's, is dated by its clear findings, not by a marginal
  blip that happens to sit earlier;
- **call graph** (when known, :mod:`agent.engine.callgraph`): a service whose own callees are
  anomalous from no later than it is probably just waiting on them; a service whose callers
  suffer is consistent with a cause; data that stops counts as an outage only when callers
  feel it;
- **consequences** (:mod:`agent.engine.consequences`): a dependency where a suspect build's
  doing lands (the calls it dropped, the work it asks) shows it, it did not cause it;
- **blame**: error logs elsewhere that name this service as unreachable or failing;
- **own symptoms** (:mod:`agent.engine.harm`): a saturated resource or a deploy that stays
  off the service's own latency and errors (when those are measured), and off its node
  mates', is probably harmless, and a dependency only explains a caller's latency or errors
  by showing them itself (or by dying).

A change that lands after the alerted services' symptoms began is a reaction to the incident,
not its cause, and weighs little. A suspect change takes a share of the strength of callers
that began failing once its new pods served; a cleared one's new pods are not a cause by
what their own first minutes called usual.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from agent.engine.callgraph import (
    CallGraph,
    apply_alert_reach,
    apply_call_graph,
    call_graph,
    doubt_unfelt_silences,
)
from agent.engine.canary import RESTARTS, Comparison, Judgement
from agent.engine.consequences import apply_dropped_calls, apply_loaded_callees
from agent.engine.detect.logfinding import LogFinding
from agent.engine.detect.series import SeriesFinding
from agent.engine.harm import apply_own_symptoms, doubt_quiet_logs
from agent.engine.headroom import AT_LIMIT, HEADROOM
from agent.engine.hypothesis import fault_scores, hypothesize, strength
from agent.engine.service_score import (
    CLEAR_SHARE,
    ServiceScore,
    blames,
    crashed,
    onset_of,
    own_failure,
    strength_by,
    symptoms,
)
from agent.engine.sizes import note_steps, passed_to
from agent.engine.waits import Wait, wait_blame
from agent.models import FaultType, SignalKind, Topology


def rank_services(
    metrics: list[SeriesFinding],
    logs: list[LogFinding],
    topology: Topology | None,
    threshold: float,
    resolution_s: float,
    alerted: tuple[str, ...] = (),
    coverage: Mapping[str, frozenset[SignalKind]] | None = None,
    fired_at: float | None = None,
    waiters: frozenset[str] = frozenset(),
    observed_edges: frozenset[tuple[str, str]] = frozenset(),
    idle: frozenset[str] = frozenset(),
    judged: Sequence[Judgement] = (),
    colocated: Mapping[str, frozenset[str]] | None = None,
) -> list[ServiceScore]:
    """Candidates, best first. Deterministic: ties break on the service name.

    ``fired_at`` is when the alert fired (Unix seconds), if one did: the incident was visible
    by then at the latest, whatever the alerted services' series say.

    ``coverage`` gives the kinds of series each service has at all, anomalous or not: where
    latency or errors are measured, a quiet serving path is evidence too
    (:mod:`agent.engine.harm`); a service without resource series is not run by us.
    ``waiters`` have client-side latency series; ``observed_edges`` are the caller -> callee
    pairs that per-edge series measure (:mod:`agent.engine.waits`). ``judged`` are the
    changes in the window with their canary verdicts (:mod:`agent.engine.canary`).
    ``colocated`` names, per service, the services that share a node with it
    (:mod:`agent.engine.hosts`).
    """
    coverage = coverage or {}
    by_service: dict[str, ServiceScore] = {}
    metrics = _without_cleared_changes(metrics, judged)
    for f in metrics:
        by_service.setdefault(f.service, ServiceScore(f.service)).metrics.append(f)
    for lf in logs:
        by_service.setdefault(lf.service, ServiceScore(lf.service)).logs.append(lf)
    blame = _blame(logs, threshold)
    unreachable = {p for f in logs if blames(f) and "refused" in f.signatures for p in f.mentions}
    for service, (_, onset) in blame.items():
        by_service.setdefault(service, ServiceScore(service, onset=onset))

    graph = call_graph(topology, logs, observed_edges)
    doubt_unfelt_silences(by_service, graph, blame, threshold, max(3 * resolution_s, 10.0))
    doubt_quiet_logs(by_service, coverage, threshold)
    waits = wait_blame(by_service, graph, waiters, threshold)
    for service, pointing in waits.items():
        by_service.setdefault(service, ServiceScore(service)).waited_by = pointing.callers
    visible = _visible(by_service, alerted, fired_at)
    for s in by_service.values():
        blamed, blamed_at = blame.get(s.service, (0.0, None))
        wait = waits.get(s.service)
        waited = wait.strength if wait is not None else 0.0
        s.strength = strength_by(s, None, threshold, visible) + blamed + waited
        s.onset = onset_of(s.metrics, s.logs) or _earliest(blamed_at, wait)
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
                waited_on=waited,
            )
        )
        if blamed:
            s.reasons.append("named as failing in other services' error logs")
        if any(f.far_below_limit for f in s.metrics):
            s.reasons.append(
                f"its CPU stayed under {HEADROOM:.0%} of its limit: busier, not starved"
            )
        if any(f.at_limit for f in s.metrics):
            s.reasons.append(f"its CPU ran at {AT_LIMIT:.0%} of its limit or more: starved of CPU")
        if wait is not None:
            callers = ", ".join(sorted(set(wait.callers))[:3])
            s.reasons.append(f"its callers wait longer on it (client-side latency): {callers}")

    _apply_idle(by_service, idle)
    _apply_suspect_changes(by_service, judged, threshold, graph, max(3 * resolution_s, 10.0))
    apply_own_symptoms(
        by_service,
        frozenset(n for n, k in coverage.items() if k & {SignalKind.LATENCY, SignalKind.ERRORS}),
        colocated or {},
    )
    apply_dropped_calls(by_service)
    apply_loaded_callees(by_service, judged, graph, max(3 * resolution_s, 10.0))
    _apply_onset_order(by_service, resolution_s, visible)
    if graph:
        apply_call_graph(by_service, graph, resolution_s, threshold, visible, coverage)
        dropping = {s.service for s in by_service.values() if set(alerted) & s.dropped_calls}
        apply_alert_reach(by_service, graph, alerted, frozenset(dropping))
    ranked = sorted(by_service.values(), key=lambda s: (-s.score, s.service))
    return [s for s in ranked if s.score > 0]


def _without_cleared_changes(
    metrics: list[SeriesFinding], judged: Sequence[Judgement]
) -> list[SeriesFinding]:
    """A rollout whose new pods were compared and match its old ones is not a cause: its
    deploy markers (version, generation, restart series) stop counting as evidence, nor do
    its new pods' series where the detector had only their first minutes to call usual (a
    pod that started shortly before the incident has no normal of its own: its start-up and
    a few steady samples make a spread that ordinary noise later beats many times over; the
    comparison with the old pods is the judgement on it). Nor do the blips of pods a rollout
    replaced, in their last minutes."""
    verdicts: dict[str, set[str]] = {}
    for j in judged:
        verdicts.setdefault(j.change.service, set()).add(j.verdict)
    cleared = {s for s, v in verdicts.items() if v == {"cleared"}}
    young = {p for j in judged if j.change.service in cleared for p in j.new_pods}
    data_end = max((f.end for f in metrics), default=0.0)
    return [
        f
        for f in metrics
        if not (f.kind is SignalKind.CHANGE and f.service in cleared)
        and not (f.service in verdicts and _draining(f, data_end))
        and not (f.signal.pod in young and f.baseline.count < OWN_HISTORY)
    ]


DRAIN_S = 120.0
OWN_HISTORY = 10  # samples before the incident a pod's own baseline needs to say what is usual


def _draining(f: SeriesFinding, data_end: float) -> bool:
    """A blip in a replaced pod's last minutes: while a rollout drains an old pod, its last
    requests fail or wait, in any healthy rollout."""
    stamps = f.signal.timestamps
    if f.signal.pod is None or not stamps or f.direction <= 0 or f.run > 2:
        return False
    gone = stamps[-1] < data_end - DRAIN_S / 2
    return gone and stamps[-1] - f.onset <= DRAIN_S


def finding(judgement: Judgement) -> SeriesFinding | None:
    """The suspect change's strongest comparison as a finding the report can cite."""
    worst = judgement.worst
    if worst is None or judgement.verdict != "suspect":
        return None
    at = judgement.change.at.timestamp()
    end = worst.signal.timestamps[-1] if worst.signal.timestamps else at
    return SeriesFinding(
        signal=worst.signal,
        kind=SignalKind.CHANGE,
        score=worst.z,
        direction=1,
        onset=at,
        peak=at,
        end=end,
        baseline=worst.reference,
        incident=worst.new,
        level=worst.new.median,
        until=end,
        run=max(worst.new.count, 2),
        versus=worst.versus,
    )


SERVING = frozenset({SignalKind.ERRORS, SignalKind.LATENCY})
NEIGHBOUR_SHARE = 0.6  # of a failing caller's strength that its suspect callee takes
EXPLAINS = 0.5  # of a caller's strength another callee needs to explain its trouble


def _apply_suspect_changes(
    by_service: dict[str, ServiceScore],
    judged: Sequence[Judgement],
    threshold: float,
    graph: CallGraph,
    tolerance: float,
) -> None:
    """A change whose new pods behave worse than its old ones is a cause in its own right
    (``bad_deploy``), dated by the change. Its failing callers' trouble is its evidence (a
    share of their strength), whether their rise or its own pods made it suspect."""
    suspects = {j.change.service for j in judged if j.verdict == "suspect"}
    # Decided before any change takes a share, so that the order of the changes is moot.
    failing = {id(j): _failing_callers(j, graph, by_service, suspects, tolerance) for j in judged}
    note_steps(by_service, judged)
    for j in judged:
        evidence = finding(j)
        if evidence is None:
            continue
        s = by_service.setdefault(j.change.service, ServiceScore(j.change.service))
        s.metrics = sorted([evidence, *s.metrics], key=lambda f: -f.score)
        worse = [c for c in j.comparisons if c.worse]
        bonus = strength(evidence.score, threshold) * (j.worst.weight if j.worst else 1.0)
        # Callers failing on what the new version answers are its symptoms: their trouble is
        # its evidence, as strong as theirs (second-hand: discounted), unless a bigger build's.
        callers = failing[id(j)] | {c.signal.service for c in worse} - {s.service}
        felt = [c.strength for c in passed_to(s.service, callers, by_service, graph.callees)]
        bonus = max([bonus, *(NEIGHBOUR_SHARE * x for x in felt)])
        s.strength += bonus
        s.score += bonus
        at = j.change.at.timestamp()
        if s.change_bonus is None or s.change_bonus[1] < bonus:
            s.change_bonus = (at, bonus)
        s.fault_type = FaultType.BAD_DEPLOY
        s.changed_worse |= frozenset(c.kind for c in worse if c.kind in SERVING)
        s.dropped_calls |= frozenset(
            c.signal.service
            for c in worse
            if c.kind is SignalKind.TRAFFIC and c.signal.service != s.service
        )
        began = _began(worse, at)
        s.onset = began if s.onset is None else min(s.onset, began)
        s.reasons.extend(j.reasons)


def _failing_callers(
    j: Judgement,
    graph: CallGraph,
    by_service: Mapping[str, ServiceScore],
    suspects: set[str],
    tolerance: float,
) -> set[str]:
    """Callers whose latency or errors went bad once a build that answers slower or fails
    itself, or whose pods die, served: they suffer what the new version answers, whether the
    change was found suspect by its own pods or by those callers. Not a caller with a
    suspect change of its own (its trouble is its own), nor one another of whose callees
    was in trouble by then, strong enough to explain it."""
    worse = [c for c in j.comparisons if c.worse and c.own]
    hurt = {c.kind for c in worse if c.kind in SERVING}
    if any(c.label == RESTARTS for c in worse):
        hurt = set(SERVING)
    since = (j.served or j.change.at.timestamp()) - tolerance
    return {
        name
        for name in graph.callers.get(j.change.service, ())
        if hurt
        and name not in suspects
        and (c := by_service.get(name)) is not None
        and c.onset is not None
        and c.onset >= since
        and symptoms(c, None, since) & hurt
        and not _other_trouble(c, j.change.service, c.onset + tolerance, graph, by_service)
    }


def _other_trouble(
    caller: ServiceScore,
    changed: str,
    by: float,
    graph: CallGraph,
    by_service: Mapping[str, ServiceScore],
) -> bool:
    """Whether another callee of ``caller`` was slow or failing by ``by``, strong enough to
    explain the caller's trouble: then that trouble may be the other callee's."""
    return any(
        symptoms(d, by) and d.strength >= EXPLAINS * caller.strength
        for name in graph.callees.get(caller.service, ())
        if name != changed and (d := by_service.get(name)) is not None
    )


def _began(worse: Sequence[Comparison], at: float) -> float:
    """When a suspect change's trouble began: at the change where its own pods are worse;
    where only its neighbours show it (wrong values, a dropped call), when their rise or
    loss began, which a code path that traffic reaches late puts minutes after it."""
    if any(c.own for c in worse):
        return at
    return max(at, min((c.onset for c in worse if c.onset is not None), default=at))


def _earliest(blamed_at: float | None, wait: Wait | None) -> float | None:
    times = [t for t in (blamed_at, wait.onset if wait is not None else None) if t is not None]
    return min(times, default=None)


def _blame(logs: list[LogFinding], threshold: float) -> dict[str, tuple[float, float]]:
    """Services that other services' error logs say they cannot reach: strength, first seen."""
    blamed: dict[str, tuple[float, float]] = {}
    for f in logs:
        if blames(f):
            for peer in f.mentions:
                w, t = blamed.get(peer, (0.0, f.onset))
                blamed[peer] = (max(w, strength(f.score, threshold)), min(t, f.onset))
    return blamed


def _alerted_symptom_onset(
    by_service: dict[str, ServiceScore], alerted: tuple[str, ...]
) -> float | None:
    """When the alerted services' latency or errors began to move, if they did.

    Only clear moves date it: a marginal blip before the real symptoms (one noisy series
    barely over the threshold) would otherwise set the incident's start minutes early."""
    symptoms = [
        f
        for name in alerted
        if (s := by_service.get(name)) is not None
        for f in s.metrics
        if f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
    ]
    if not symptoms:
        return None
    clear = CLEAR_SHARE * max(f.score for f in symptoms)
    return min(f.onset for f in symptoms if f.score >= clear)


def _visible(
    by_service: dict[str, ServiceScore], alerted: tuple[str, ...], fired_at: float | None
) -> float | None:
    """When the alerted services' symptoms began, or the alert fired if that was earlier."""
    times = [t for t in (_alerted_symptom_onset(by_service, alerted), fired_at) if t is not None]
    return min(times, default=None)


def _incident_onset(by_service: dict[str, ServiceScore], visible: float | None) -> float | None:
    """When the incident became visible (see :func:`_visible`), else the earliest onset
    among the strong candidates."""
    if visible is not None:
        return visible
    timed = [s for s in by_service.values() if s.onset is not None]
    if not timed:
        return None
    top = max(s.strength for s in timed)
    return min(s.onset for s in timed if s.strength >= 0.5 * top and s.onset is not None)


def _apply_onset_order(
    by_service: dict[str, ServiceScore], resolution_s: float, visible: float | None
) -> None:
    """Causes start shortly before the symptoms; much earlier is a bystander, later an effect."""
    reference = _incident_onset(by_service, visible)
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


def _apply_idle(by_service: dict[str, ServiceScore], idle: frozenset[str]) -> None:
    """A service that served no requests in the window (its serving latency never moved)
    cannot be what its callers suffer from, short of dying: its other findings are a
    background job's or an empty histogram's."""
    for s in by_service.values():
        if (
            s.service in idle
            and not any(f.direction == 0 or crashed(f) for f in s.metrics)
            and not any(own_failure(f) for f in s.logs)
        ):
            s.score *= 0.3
            s.reasons.append(
                "it served no requests in the window (its serving latency never moved)"
            )
