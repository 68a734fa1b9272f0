"""A rollout incident unfolded: what the defect or the fault did, pod by pod, and what the
incident says about itself: the page, the changes CI/CD reported and the ground truth.

Every rollout spreads traffic over its pods as they come and go, with a new pod's slow first
requests; then either the defective build's harm (``defects.py``) or the main simulator's
fault (``faults.py``) is applied, travels to callers (``propagation.py``), and each pod's
request series are drawn (``podtraffic.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.models import Change, ChangeKind, FaultType, GroundTruth
from connectors.alertmanager import AlertmanagerWebhook
from evals.simulator.alert import build_alert, build_drop_alert
from evals.simulator.defects import Context, Defect, Harm, RolloutPlan, drop_traffic, ship
from evals.simulator.faults import inject
from evals.simulator.plan import FaultPlan, Symptom
from evals.simulator.podtraffic import (
    PodEffects,
    PodRequests,
    Split,
    load_cpu,
    split_requests,
    start_up,
    traffic_splits,
)
from evals.simulator.propagation import propagate
from evals.simulator.rollouts import Rollout
from evals.simulator.scenario import moment
from evals.simulator.telemetry import Telemetry, Timeline
from evals.simulator.topology import ServiceGraph


@dataclasses.dataclass
class RolloutIncident:
    """The root cause as a fault plan, and what it did."""

    plan: FaultPlan
    symptoms: dict[str, Symptom]  # what every pod of a service sees
    alert_symptoms: dict[str, Symptom]  # ... and the root cause's own, for the page
    effects: PodEffects  # what single pods see
    keep: frozenset[str]  # services whose own series stand (a dead dependency)
    harm: Harm | None  # a defective build's, None for another fault


def _defective(
    telemetry: Telemetry,
    graph: ServiceGraph,
    rollout: Rollout,
    defect: Defect,
    splits: dict[str, Split],
    effects: PodEffects,
    rng: np.random.Generator,
) -> RolloutIncident:
    """The defective build's harm; its own pods carry it, its callers get the symptom."""
    ctx = Context(telemetry, graph, rollout, splits[rollout.service], effects, defect, rng)
    harm = ship(ctx)
    drop_traffic(telemetry, harm.dropped)
    n = telemetry.timeline.length
    pods, severity = rollout.new_pods, defect.severity
    plan = FaultPlan(FaultType.BAD_DEPLOY, rollout.service, pods, harm.onset, n, severity)
    symptoms = propagate(graph, telemetry, plan, harm.symptom, rng)
    alerting = {**symptoms, rollout.service: harm.own}
    del symptoms[rollout.service]
    return RolloutIncident(plan, symptoms, alerting, effects, frozenset(), harm)


def _innocent(
    telemetry: Telemetry,
    graph: ServiceGraph,
    plan: FaultPlan,
    effects: PodEffects,
    rng: np.random.Generator,
) -> RolloutIncident:
    """The main simulator's fault; a pod-scoped one stays on its pods."""
    symptoms = propagate(graph, telemetry, plan, inject(telemetry, graph, plan, rng), rng)
    alerting = dict(symptoms)
    keep: frozenset[str] = frozenset()
    spec = graph.by_name[plan.service]
    if plan.fault is FaultType.DEPENDENCY_OUTAGE:
        keep = frozenset({plan.service})
    elif plan.pod is not None or 0 < len(plan.pods) < len(spec.pods):
        root = symptoms.pop(plan.service)
        fraction = len(plan.pods) / len(spec.pods)
        for pod in plan.pods:
            effects.add_latency(pod, root.latency[2] * np.array([[0.6], [0.85], [1.0]]))
            effects.add_errors(pod, np.clip(root.errors / fraction, 0, 1))
    return RolloutIncident(plan, symptoms, alerting, effects, keep, None)


def unfold(
    telemetry: Telemetry,
    graph: ServiceGraph,
    plan: RolloutPlan,
    fault: FaultPlan | None,
    rng: np.random.Generator,
) -> tuple[RolloutIncident, dict[str, PodRequests]]:
    """Traffic over the rolling pods, the harm or the fault, and every pod's requests."""
    by_service = {r.service: r for r in plan.rollouts}
    splits = traffic_splits(telemetry, by_service, rng)
    effects = PodEffects()
    for rollout in plan.rollouts:
        load_cpu(telemetry.services[rollout.service], splits[rollout.service], rollout.replicas[0])
        start_up(telemetry, rollout, effects, rng)
    if plan.defective is not None and plan.defect is not None:
        incident = _defective(telemetry, graph, plan.defective, plan.defect, splits, effects, rng)
    else:
        assert fault is not None
        incident = _innocent(telemetry, graph, fault, effects, rng)
    pods = split_requests(
        telemetry, graph, splits, incident.symptoms, incident.effects, incident.keep, rng
    )
    return incident, pods


def page(
    graph: ServiceGraph, telemetry: Telemetry, incident: RolloutIncident, rng: np.random.Generator
) -> AlertmanagerWebhook:
    """A traffic alert where a call went missing, else the main simulator's symptom alert,
    fired after the first visible symptom rather than the (maybe silent) onset."""
    harm, plan = incident.harm, incident.plan
    if harm is not None and harm.dropped:
        callee = next(iter(harm.dropped))
        lost = np.flatnonzero(harm.dropped[callee] > 0.2)
        onset = int(lost[0]) if lost.size else plan.onset
        return build_drop_alert(graph, telemetry, callee, onset, rng)
    noticed = _noticed(telemetry, incident.alert_symptoms, plan.onset)
    timed = dataclasses.replace(plan, onset=noticed)
    return build_alert(graph, telemetry, timed, incident.alert_symptoms, rng)


def _noticed(telemetry: Telemetry, symptoms: dict[str, Symptom], onset: int) -> int:
    """First sample from ``onset`` on where some service's errors or p99 visibly moved."""
    n = telemetry.timeline.length
    first = n - 1
    for name, symptom in symptoms.items():
        typical = float(np.nanmedian(telemetry.services[name].latency[2])) or 1e-3
        moved = (symptom.errors > 0.01) | (np.abs(symptom.latency[2]) / typical > 0.3)
        hits = np.flatnonzero(moved[onset:])
        if hits.size:
            first = min(first, onset + int(hits[0]))
    return first if first < n - 1 else onset


def reported_changes(rollouts: list[Rollout], timeline: Timeline, namespace: str) -> list[Change]:
    """Every rollout as CI/CD reports it, in the namespace the simulated Deployments run in."""
    return sorted(
        (
            Change(
                service=r.service,
                namespace=namespace,
                kind=ChangeKind.DEPLOY,
                at=moment(timeline.time(r.start)),
                from_version=r.from_version,
                to_version=r.to_version,
                author=r.author,
                link=r.link,
                source="api",
                id=r.link.rstrip("/").rsplit("/", 1)[-1].split("=")[-1],
            )
            for r in rollouts
        ),
        key=lambda c: (c.at, c.service),
    )


def ground_truth(incident: RolloutIncident, plan: RolloutPlan, timeline: Timeline) -> GroundTruth:
    fault = incident.plan
    changed = ", ".join(r.change_id for r in plan.rollouts) or "none"
    if plan.defective is not None and plan.defect is not None:
        defect = plan.defect
        delayed = f", reached {defect.delay} samples after the rollout" if defect.delay else ""
        callee = f" (skips {defect.callee})" if defect.callee else ""
        note = (
            f"defect {defect.kind.value}{callee}{delayed}; severity {defect.severity:.2f}; "
            f"new ReplicaSet {plan.defective.template_hash}; rollouts: {changed}"
        )
        change = plan.defective.change_id
    else:
        pods = ", ".join(fault.pods) or "none"
        note = f"severity {fault.severity:.2f}; pods: {pods}; innocent rollouts: {changed}"
        change = None
    return GroundTruth(
        service=fault.service,
        fault_type=fault.fault,
        onset=moment(timeline.time(fault.onset)),
        pod=fault.pod,
        note=note,
        change=change,
    )
